//! The `fedpref` command line: wires the library's parts to subcommands.
//!
//! Exit codes: 0 success, 1 the work failed, 2 a usage or configuration error.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            cli::exit_code_for(&error)
        }
    }
}

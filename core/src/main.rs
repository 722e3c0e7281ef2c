//! The `fedpref` command line: wires the library's parts to subcommands.
//!
//! Exit codes: 0 success, 1 the work failed, 2 a usage or configuration error, 130 interrupted.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Flush-to-zero and allocator thresholds before any tensor exists: denormals from softmax
    // made backward passes 10x slower, and per-op mmap page faults another 1.5-2x.
    fedpref_model::init_cpu();
    match cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            cli::exit_code_for(&error)
        }
    }
}

//! `cargo xtask`: project automation for fedpref, written in Rust instead of shell scripts.
//!
//! `.cargo/config.toml` aliases `cargo xtask` to `cargo run --package xtask --`. This file only
//! parses the flags ([`flags`]) and dispatches; each command lives in its own module and runs
//! from [`project_root`]:
//!
//! - `demo`: build, fetch assets, run the quickstart and write its report ([`demo`]);
//! - `setup`: fetch the model, data and benchmark assets ([`setup`], table in [`assets`]);
//! - `build-plugins`: build every plugin cdylib next to the `fedpref` binary ([`plugins`]);
//! - `test`: set up, build and run the whole test suite, as CI does ([`test`]); `--judge` adds
//!   the judge scorer against a real llama-cpp-python server ([`judge_server`]), `--flower` the
//!   Flower deployment test ([`flower`]);
//! - `new-plugin`: scaffold a plugin crate from a template ([`new_plugin`]);
//! - `bench train-step | generate`: release-build `fedpref` and run `fedpref bench` ([`bench`]);
//! - `build --cuda`: a packed GPU build made without a GPU ([`cuda`]).
//!
//! Conventions of the whole repository are checked by the `tidy` tests (`cargo test -p xtask`).

mod archive;
mod assets;
mod bench;
mod cuda;
mod demo;
mod flags;
mod flower;
mod judge_server;
mod new_plugin;
mod plugins;
mod setup;
mod test;
#[cfg(test)]
mod tidy;
mod venv;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Parser;

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    match run(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(flags: flags::Xtask) -> anyhow::Result<()> {
    let sh = xshell::Shell::new()?;
    sh.change_dir(project_root());
    match flags.command {
        flags::Command::Demo(cmd) => demo::run(&sh, &cmd),
        flags::Command::Setup(cmd) => setup::run(&sh, &cmd),
        flags::Command::BuildPlugins(cmd) => plugins::run(&sh, &cmd).map(|_| ()),
        flags::Command::Test(cmd) => test::run(&sh, &cmd),
        flags::Command::NewPlugin(cmd) => new_plugin::run(&cmd),
        flags::Command::Build(cmd) => cuda::run(&sh, &cmd),
        flags::Command::Bench(cmd) => bench::run(&sh, &cmd),
    }
}

/// The repository root (the folder holding the workspace `Cargo.toml`).
pub fn project_root() -> PathBuf {
    // xtask/Cargo.toml sits one level below the root, so the parent always exists.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

//! `cargo xtask bench train-step | generate [ARGS]`: builds `fedpref` with the release
//! profile (benchmarks of a debug build measure the wrong thing) and runs
//! `fedpref bench <which> ARGS`, which prints the table (see `fedpref::model::bench`).
//!
//! Compare with PyTorch on the same machine by adding `--pytorch xtask/bench/lora_step.py`
//! (and `--python <a Python with torch, transformers and peft>`).

use anyhow::Result;
use xshell::{cmd, Shell};

use crate::flags::{self, BenchKind};

/// Runs `cargo xtask bench`.
pub fn run(sh: &Shell, flags: &flags::Bench) -> Result<()> {
    cmd!(sh, "cargo build --release --package fedpref").run()?;
    let which = match flags.which {
        BenchKind::TrainStep => "train-step",
        BenchKind::Generate => "generate",
    };
    let args = &flags.args;
    cmd!(sh, "target/release/fedpref bench {which} {args...}").run()?;
    Ok(())
}

//! `cargo xtask test`: the whole test suite, exactly as CI runs it (`.ci/run` calls this).
//!
//! Order matters: the end-to-end tests in `tests/` need the default model and data (`setup`),
//! every plugin cdylib next to the `fedpref` binary (`cargo build --workspace`), and the test
//! fixture plugins (`tests/fixtures`, its own workspace so that broken fixtures never join the
//! real plugin set) before `cargo test --workspace` runs them.

use std::time::Instant;

use anyhow::Result;
use xshell::{cmd, Shell};

use crate::{flags, judge_server, project_root, setup};

/// Runs `cargo xtask test`, printing the elapsed time whether it passes or fails.
pub fn run(sh: &Shell, flags: &flags::Test) -> Result<()> {
    let start = Instant::now();
    let result = build_and_test(sh).and_then(|()| {
        if flags.judge {
            judge_server::run(sh)
        } else {
            Ok(())
        }
    });
    let seconds = start.elapsed().as_secs();
    let verdict = if result.is_ok() { "passed" } else { "failed" };
    println!(
        "cargo xtask test: {verdict} after {}m {:02}s",
        seconds / 60,
        seconds % 60
    );
    result
}

fn build_and_test(sh: &Shell) -> Result<()> {
    let missing = setup::missing_default_assets();
    if !missing.is_empty() {
        println!("{} default asset(s) missing: running setup", missing.len());
        setup::run(sh, &flags::Setup { with: Vec::new() })?;
    }
    cmd!(sh, "cargo build --workspace").run()?;
    if project_root().join("tests/fixtures/Cargo.toml").exists() {
        cmd!(
            sh,
            "cargo build --manifest-path tests/fixtures/Cargo.toml --target-dir target/fixtures"
        )
        .run()?;
    }
    // Run every test binary even after a failure, so one CI run reports every failing test.
    // The assets were fetched above: a test that finds one missing fails instead of skipping.
    cmd!(sh, "cargo test --workspace --no-fail-fast")
        .env("FEDPREF_REQUIRE_ASSETS", "1")
        .run()?;
    Ok(())
}

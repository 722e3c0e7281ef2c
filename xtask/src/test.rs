//! `cargo xtask test`: the whole test suite, exactly as CI runs it (`.ci/run` calls this).
//!
//! Order matters: the end-to-end tests in `tests/` need the default model and data (`setup`),
//! every plugin cdylib next to the `fedpref` binary (`cargo build --workspace`), and the test
//! fixture plugins (`tests/fixtures`, its own workspace so that broken fixtures never join the
//! real plugin set) before `cargo test --workspace` runs them. The fault suite
//! (`tests/faults`) writes its counts to `target/fault-counts/`, printed here as a table. The
//! Flower deployment test ([`flower`]) runs last.

use std::time::Instant;

use anyhow::Result;
use xshell::{cmd, Shell};

use crate::{flags, flower, judge_server, project_root, setup};

/// Runs `cargo xtask test`, printing the elapsed time whether it passes or fails.
pub fn run(sh: &Shell, flags: &flags::Test) -> Result<()> {
    let start = Instant::now();
    let result = if flags.flower {
        flower::run(sh)
    } else {
        build_and_test(sh, flags.faults)
            .and_then(|()| {
                if flags.judge {
                    judge_server::run(sh)
                } else {
                    Ok(())
                }
            })
            .and_then(|()| {
                if flags.faults {
                    Ok(())
                } else {
                    flower::run(sh)
                }
            })
    };
    let seconds = start.elapsed().as_secs();
    let verdict = if result.is_ok() { "passed" } else { "failed" };
    println!(
        "cargo xtask test: {verdict} after {}m {:02}s",
        seconds / 60,
        seconds % 60
    );
    result
}

fn build_and_test(sh: &Shell, faults_only: bool) -> Result<()> {
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
    let counts = project_root().join("target/fault-counts");
    let _ = std::fs::remove_dir_all(&counts);
    // Run every test binary even after a failure, so one CI run reports every failing test.
    // The assets were fetched above: a test that finds one missing fails instead of skipping.
    let tested = if faults_only {
        cmd!(
            sh,
            "cargo test --workspace --no-fail-fast --test integration -- faults::"
        )
    } else {
        cmd!(sh, "cargo test --workspace --no-fail-fast")
    }
    .env("FEDPREF_REQUIRE_ASSETS", "1")
    .run();
    print_fault_counts(&counts);
    tested?;
    Ok(())
}

/// Prints the fault suite's counts (one JSON object of counts per test), if it ran.
fn print_fault_counts(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    println!("\nfault suite:");
    for file in files {
        let test = file.file_stem().map(|s| s.to_string_lossy().into_owned());
        let counts: serde_json::Map<String, serde_json::Value> = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        for (what, count) in counts {
            println!(
                "  {:<10} {what:<40} {count}",
                test.as_deref().unwrap_or("?")
            );
        }
    }
}

//! `cargo xtask demo`: the quickstart from a fresh clone to a report, in one command.
//!
//! Builds the workspace (the `fedpref` binary and every plugin), fetches the assets (the
//! same code path as `cargo xtask setup`), runs `fedpref run configs/quickstart.toml` (DPO,
//! KTO and KTOR with FedAvg on SmolLM2-135M; complete runs are skipped and interrupted ones
//! resumed, so a second demo is quick; `--fresh` starts over after the config changed), and
//! writes the report with `fedpref report`. It prints where the report and figures are, then
//! the per-round table, and ends with the results table. The run takes 8 to 10 minutes on a
//! 2-core CPU after the first build, evaluation included.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{flags, project_root, setup};

/// The demo's config and the sweep directory it writes (`output_dir/name` in that config).
const CONFIG: &str = "configs/quickstart.toml";
const SWEEP_DIR: &str = "runs/quickstart";

/// Runs `cargo xtask demo`.
pub fn run(sh: &Shell, flags: &flags::Demo) -> Result<()> {
    if flags.fresh {
        let (sweep, previous) = (
            project_root().join(SWEEP_DIR),
            project_root().join(format!("{SWEEP_DIR}.previous")),
        );
        if sweep.exists() {
            if previous.exists() {
                std::fs::remove_dir_all(&previous)
                    .with_context(|| format!("removing {}", previous.display()))?;
            }
            std::fs::rename(&sweep, &previous)
                .with_context(|| format!("moving {} aside", sweep.display()))?;
            println!(
                "==> moved the previous quickstart runs to {}",
                previous.display()
            );
        }
    }
    println!("==> building fedpref and its plugins");
    cmd!(sh, "cargo build --workspace").run()?;
    println!("==> fetching the model and data");
    setup::run(sh, &flags::Setup { with: Vec::new() })?;
    let fedpref = project_root().join("target/debug/fedpref");
    println!(
        "==> training: {} (a few minutes per round on a small CPU, then a small evaluation)",
        CONFIG
    );
    cmd!(sh, "{fedpref} run {CONFIG}").run().context(
        "the quickstart run failed; if fedpref said runs/quickstart holds a run with a different \
         config.toml (configs/quickstart.toml changed since the last demo), rerun with \
         `cargo xtask demo --fresh`",
    )?;
    println!("==> writing the report");
    let printed = cmd!(sh, "{fedpref} report {SWEEP_DIR}")
        .read()
        .context("`fedpref report` failed; the runs are in runs/quickstart")?;
    let report = Path::new(SWEEP_DIR).join("report");
    // `fedpref report` prints the results table, then the files it wrote: the files go first
    // here so that the output ends with the table.
    let (results, files) = match printed.find("\nreport:") {
        Some(at) => printed.split_at(at),
        None => (printed.as_str(), ""),
    };
    println!("{}", files.trim());
    println!(
        "open {} in a browser (self-contained), or read {}",
        report.join("index.html").display(),
        report.join("index.md").display()
    );
    // The quickstart's benchmarks are tiny; the rounds show the training move.
    let rounds = report.join("tables/rounds.md");
    if let Ok(table) = std::fs::read_to_string(project_root().join(&rounds)) {
        println!(
            "\n==> training per round ({})\n\n{}",
            rounds.display(),
            table.trim_end()
        );
    }
    println!(
        "\n==> results ({})\n\n{}",
        report.join("tables/results.md").display(),
        results.trim()
    );
    Ok(())
}

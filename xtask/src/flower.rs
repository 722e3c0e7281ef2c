//! `cargo xtask test --flower`: the Flower deployment test (`deploy/flower/tests/
//! test_deployment.py`): a SuperLink and three SuperNodes on 127.0.0.1 train fedpref runs that
//! must end with the simulated runs' adapters bit for bit, survive a killed SuperNode and resume
//! after a restart.
//!
//! The first run installs the pinned `flwr` from PyPI into `target/flower-venv` (under a minute)
//! and later runs reuse it. `cargo xtask test` runs it after the suite, so CI does too.

use std::time::Instant;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{project_root, setup, venv::Venv};

/// The pinned Flower release the app in `deploy/flower/` is written against.
const PACKAGE: &str = "flwr==1.42.0";
/// The venv, under the (git-ignored) target directory.
const VENV: &str = "target/flower-venv";
/// The model and data of the test's runs, from `cargo xtask setup`.
const MODEL: &str = "assets/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const DATA: &str = "assets/data/dpo_en_demo.json";

/// Installs Flower if needed, then runs the deployment test against the debug `fedpref`,
/// printing its time.
pub fn run(sh: &Shell) -> Result<()> {
    let root = project_root();
    if !root.join(MODEL).is_file() || !root.join(DATA).is_file() {
        setup::run(sh, &crate::flags::Setup { with: Vec::new() })?;
    }
    let probe = format!(
        "import importlib.metadata as m; assert m.version('flwr') == '{}'",
        &PACKAGE[6..]
    );
    let python = Venv {
        dir: VENV,
        package: PACKAGE,
        probe: &probe,
        note: "under a minute",
    }
    .ensure(sh)?;
    // The binary and the plugins beside it (a no-op after the suite's own build).
    cmd!(sh, "cargo build --workspace").run()?;
    let fedpref = root.join("target/debug/fedpref");
    let test = root.join("deploy/flower/tests/test_deployment.py");
    let (model, data) = (root.join(MODEL), root.join(DATA));
    let started = Instant::now();
    cmd!(
        sh,
        "{python} {test} --fedpref-bin {fedpref} --model {model} --data {data}"
    )
    .env_remove("FEDPREF_PLUGIN_PATH")
    .run()
    .context("the Flower deployment test failed")?;
    println!(
        "Flower deployment test passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

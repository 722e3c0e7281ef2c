//! `cargo xtask test --judge`: the `judge` scorer against a real OpenAI-compatible server,
//! llama-cpp-python's `llama_cpp.server` serving the default GGUF on a free loopback port.
//!
//! llama-cpp-python comes from PyPI as a source package and builds llama.cpp with CMake, so
//! the first run installs it into `target/judge-venv` (about 6 minutes on 2 cores) and later
//! runs reuse it. The test itself is `plugins/scorers/standard/tests/judge_server.rs`, which
//! starts and stops the server; this command provides the Python and the model through
//! `FEDPREF_JUDGE_PYTHON` and `FEDPREF_JUDGE_MODEL`. CI does not run it (README, "Tests").

use std::time::Instant;

use anyhow::Result;
use xshell::{cmd, Shell};

use crate::{project_root, setup, venv::Venv};

/// The pinned server package (llama.cpp built from its sdist).
const PACKAGE: &str = "llama-cpp-python[server]==0.3.16";
/// The venv, under the (git-ignored) target directory.
const VENV: &str = "target/judge-venv";
/// The judge model: the default GGUF from `cargo xtask setup`.
const MODEL: &str = "assets/models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Installs the server if needed, then runs the judge-server test.
pub fn run(sh: &Shell) -> Result<()> {
    let root = project_root();
    let model = root.join(MODEL);
    if !model.is_file() {
        setup::run(sh, &crate::flags::Setup { with: Vec::new() })?;
    }
    let python = Venv {
        dir: VENV,
        package: PACKAGE,
        probe: "import llama_cpp.server",
        note:
            "it builds llama.cpp from source (a C++ compiler; pip fetches CMake), several minutes",
    }
    .ensure(sh)?;
    let started = Instant::now();
    cmd!(
        sh,
        "cargo test -p fedpref-scorer-standard --test judge_server -- --nocapture"
    )
    .env("FEDPREF_JUDGE_PYTHON", &python)
    .env("FEDPREF_JUDGE_MODEL", &model)
    .run()?;
    println!(
        "judge server test passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! `cargo xtask test --judge`: the `judge` scorer against a real OpenAI-compatible server,
//! llama-cpp-python's `llama_cpp.server` serving the default GGUF on a free loopback port.
//!
//! llama-cpp-python comes from PyPI as a source package and builds llama.cpp with CMake, so
//! the first run installs it into `target/judge-venv` (about 6 minutes on 2 cores) and later
//! runs reuse it. The test itself is `plugins/scorers/standard/tests/judge_server.rs`, which
//! starts and stops the server; this command provides the Python and the model through
//! `FEDPREF_JUDGE_PYTHON` and `FEDPREF_JUDGE_MODEL`. CI does not run it (README, "Tests").

use std::time::Instant;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{project_root, setup};

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
    let python = root.join(VENV).join(if cfg!(windows) {
        "Scripts/python.exe"
    } else {
        "bin/python"
    });
    let probe = "import llama_cpp.server";
    let installed = python.is_file()
        && cmd!(sh, "{python} -c {probe}")
            .quiet()
            .ignore_stderr()
            .run()
            .is_ok();
    if !installed {
        let host_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let venv = root.join(VENV);
        cmd!(sh, "{host_python} -m venv {venv}")
            .run()
            .context("creating the judge venv (needs python3 with venv)")?;
        println!("installing {PACKAGE} into {VENV}: builds llama.cpp from source, several minutes");
        let started = Instant::now();
        let install = cmd!(sh, "{python} -m pip install --disable-pip-version-check --no-input --progress-bar off {PACKAGE}")
            .env("CMAKE_BUILD_PARALLEL_LEVEL", std::thread::available_parallelism().map_or(2, |n| n.get()).to_string())
            .run();
        let seconds = started.elapsed().as_secs();
        if let Err(e) = install {
            bail!("installing {PACKAGE} failed after {}m {:02}s (it needs a C++ compiler; pip fetches CMake): {e}", seconds / 60, seconds % 60);
        }
        println!(
            "installed {PACKAGE} in {}m {:02}s",
            seconds / 60,
            seconds % 60
        );
    }
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

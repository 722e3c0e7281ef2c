//! Python virtual environments under `target/` for the tests that drive a Python package (the
//! judge server, Flower): created and filled from PyPI on first use, reused after.

use std::{path::PathBuf, time::Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::project_root;

/// A pinned package in a venv of its own.
pub struct Venv<'a> {
    /// The venv's folder, relative to the project root (under `target/`).
    pub dir: &'a str,
    /// What pip installs, e.g. `flwr==1.42.0`.
    pub package: &'a str,
    /// Python code that succeeds once the package is installed.
    pub probe: &'a str,
    /// Printed before installing (what it takes), and added to an install failure.
    pub note: &'a str,
}

impl Venv<'_> {
    /// The venv's Python, after installing the package unless the probe already passes.
    pub fn ensure(&self, sh: &Shell) -> Result<PathBuf> {
        let venv = project_root().join(self.dir);
        let python = venv.join(if cfg!(windows) {
            "Scripts/python.exe"
        } else {
            "bin/python"
        });
        let probe = self.probe;
        let installed = python.is_file()
            && cmd!(sh, "{python} -c {probe}")
                .quiet()
                .ignore_stderr()
                .run()
                .is_ok();
        if installed {
            return Ok(python);
        }
        let host_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        cmd!(sh, "{host_python} -m venv {venv}")
            .run()
            .with_context(|| format!("creating {} (needs python3 with venv)", self.dir))?;
        let package = self.package;
        println!("installing {package} into {}: {}", self.dir, self.note);
        let started = Instant::now();
        let install = cmd!(sh, "{python} -m pip install --disable-pip-version-check --no-input --progress-bar off {package}")
            // llama-cpp-python builds llama.cpp with CMake: on every core.
            .env("CMAKE_BUILD_PARALLEL_LEVEL", std::thread::available_parallelism().map_or(2, |n| n.get()).to_string())
            .run();
        let seconds = started.elapsed().as_secs();
        if let Err(e) = install {
            bail!(
                "installing {package} failed after {}m {:02}s ({}): {e}",
                seconds / 60,
                seconds % 60,
                self.note
            );
        }
        println!(
            "installed {package} in {}m {:02}s",
            seconds / 60,
            seconds % 60
        );
        Ok(python)
    }
}

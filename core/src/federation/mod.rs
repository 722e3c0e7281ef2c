//! The federation: a sweep of runs, each a sequence of rounds in which sampled clients train
//! the global LoRA adapter locally and an aggregator plugin combines their updates.
//!
//! - [`run`]: one run, from its data to its last checkpoint; resumes from the newest one.
//! - [`sampling`]: every random choice derived from (seed, purpose, round, client).
//! - [`checkpoint`], [`manifest`]: what a run directory holds (see [`crate::run_dir`]).

pub mod checkpoint;
pub mod manifest;
pub mod progress;
pub mod run;
pub mod sampling;

use std::sync::{atomic::AtomicBool, Arc};

pub use progress::Progress;
pub use run::{RunSummary, SweepContext};

use crate::{config::ExperimentConfig, PluginHost, Result};

/// Runs every run of `config`'s sweep in turn, skipping complete ones and resuming interrupted
/// ones; every component is checked against the plugins before any model loads.
///
/// # Errors
/// The first run's error; earlier runs' results stay on disk.
pub fn run_sweep(
    config: &ExperimentConfig,
    host: &PluginHost,
    stop: Arc<AtomicBool>,
    progress: Progress,
) -> Result<Vec<RunSummary>> {
    let runs = config.runs(host)?;
    let mut ctx = SweepContext {
        host,
        stop,
        reference_cache: None,
        progress,
    };
    let mut summaries = Vec::new();
    for run in &runs {
        summaries.push(run::run(run, &mut ctx)?);
    }
    Ok(summaries)
}

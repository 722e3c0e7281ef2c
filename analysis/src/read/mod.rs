//! Reading runs: one run directory, or a sweep directory of many, into polars frames.
//!
//! [`read`] finds the runs (directories with `config.toml`, `manifest.json` or `metrics/`),
//! reads each one's identity ([`Run`]) and files, and builds one frame per kind of row, every
//! frame starting with the identity columns `sweep, run, method, aggregator, seed`:
//!
//! | frame | from | one row per |
//! | --- | --- | --- |
//! | [`Sweep::runs_frame`] | `config.toml`, `manifest.json` | run: identity, `partitioner`, `model`, `status`, `rounds_completed`, `rounds_planned`, then every config key flattened (`federation.rounds`) |
//! | [`Sweep::steps`] | `metrics/steps.jsonl` | local optimizer step: `round, client, step, loss, lr, grad_norm, tokens, seconds` and the loss's metrics (`rewards/margins`) |
//! | [`Sweep::rounds`] | `metrics/rounds.jsonl` | round: `lr, n_sampled, n_trained, n_dropped, n_rejected, skipped, bytes_down, bytes_up, tokens, seconds, reference_seconds, train_seconds, aggregation_seconds`, the round's mean training metrics (`loss`, `rewards/margins`) and `aggregator/<metric>` |
//! | [`Sweep::evals`] | `metrics/evals.jsonl` | (round, benchmark, metric): `round, model, benchmark, metric, value` |
//! | [`Sweep::eval_items`] | `eval/<benchmark>.jsonl` | scored item: `benchmark, id, score, outcome, round, model, category, tokens, ...` (and `margin`, the held-out reward margin of a preference-accuracy item) |
//!
//! Beside the runs, `judge-check.json` ([`JudgeCheck`]) says how far the sweep's judge can be
//! trusted.
//!
//! Rounds are 0-based as written. A resumed or repeated round keeps its last row. A missing
//! or corrupt file (or line) becomes a [`Problem`] naming its path; the rest is still read,
//! unless [`ReadOptions::strict`] asks for an error. Evaluation files are optional: a run
//! without them simply has no rows there.

mod columns;
mod config;
mod jsonl;
mod judge_check;
pub(crate) mod metrics;
mod problem;
mod run;

use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

pub use self::{
    columns::{Cell, Columns},
    judge_check::{JudgeCheck, DEFAULT_THRESHOLD, JUDGE_CHECK_FILE},
    problem::Problem,
    run::Run,
};
use crate::{Error, Result};

/// How to treat missing or corrupt files.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Fail with [`Error::Strict`] listing every problem instead of skipping.
    pub strict: bool,
}

/// Everything read from a run or sweep directory.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The directory given.
    pub root: PathBuf,
    /// Its name (the experiment name for a sweep, the run name for a single run).
    pub name: String,
    /// The runs, sorted by directory name.
    pub runs: Vec<Run>,
    /// One row per run: identity and flattened config.
    pub runs_frame: DataFrame,
    /// One row per local step.
    pub steps: DataFrame,
    /// One row per round.
    pub rounds: DataFrame,
    /// One row per (round, benchmark, metric) of `metrics/evals.jsonl`.
    pub evals: DataFrame,
    /// One row per scored evaluation item.
    pub eval_items: DataFrame,
    /// The judge check beside the runs, when there is one.
    pub judge_check: Option<JudgeCheck>,
    /// Files or lines that were skipped.
    pub problems: Vec<Problem>,
}

/// Whether `dir` looks like one run's directory.
pub fn is_run_dir(dir: &Path) -> bool {
    dir.join("config.toml").is_file()
        || dir.join("manifest.json").is_file()
        || dir.join("metrics").is_dir()
}

/// The run directories of `path`: itself when it is a run, else its run subdirectories.
///
/// # Errors
/// [`Error::Io`] when `path` cannot be listed; [`Error::NoRuns`] when it holds no run.
pub fn find_runs(path: &Path) -> Result<Vec<PathBuf>> {
    if is_run_dir(path) {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    let mut runs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && is_run_dir(p))
        .collect();
    runs.sort();
    if runs.is_empty() {
        return Err(Error::NoRuns {
            path: path.to_path_buf(),
        });
    }
    Ok(runs)
}

/// Reads the run or sweep directory `path` into frames.
///
/// # Errors
/// [`Error::Io`] or [`Error::NoRuns`] when `path` is not a readable run or sweep directory;
/// [`Error::Strict`] when `options.strict` and any file was missing or corrupt;
/// [`Error::Frame`] if polars rejects a frame.
pub fn read(path: &Path, options: ReadOptions) -> Result<Sweep> {
    let run_dirs = find_runs(path)?;
    let name = path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| path.display().to_string());
    let mut problems = Vec::new();
    let runs: Vec<Run> = run_dirs
        .iter()
        .map(|dir| Run::read(dir, &mut problems))
        .collect();

    let mut runs_frame = Columns::with_leading(&metrics::IDENTITY);
    let mut steps =
        Columns::with_leading(&[&metrics::IDENTITY[..], &["round", "client", "step"]].concat());
    let mut rounds = Columns::with_leading(&[&metrics::IDENTITY[..], &["round"]].concat());
    let mut evals = Columns::with_leading(
        &[
            &metrics::IDENTITY[..],
            &["round", "model", "benchmark", "metric", "value"],
        ]
        .concat(),
    );
    let mut eval_items = Columns::with_leading(
        &[
            &metrics::IDENTITY[..],
            &["benchmark", "id", "score", "outcome"],
        ]
        .concat(),
    );
    for run in &runs {
        runs_frame.push_row(
            metrics::identity(&name, run)
                .into_iter()
                .chain(run_cells(run)),
        );
        metrics::steps(&name, run, &mut steps, &mut problems);
        metrics::rounds(&name, run, &mut rounds, &mut problems);
        metrics::evals(&name, run, &mut evals, &mut problems);
        metrics::eval_items(&name, run, &mut eval_items, &mut problems);
    }
    let judge_check = judge_check::find(path, &mut problems);
    if options.strict && !problems.is_empty() {
        return Err(Error::Strict {
            path: path.to_path_buf(),
            problems,
        });
    }
    let finish = |columns: Columns, what: &str| {
        columns.finish().map_err(|e| {
            Error::frame(
                format!("building the {what} frame of {}", path.display()),
                e,
            )
        })
    };
    Ok(Sweep {
        root: path.to_path_buf(),
        name,
        runs,
        runs_frame: finish(runs_frame, "runs")?,
        steps: finish(steps, "steps")?,
        rounds: finish(rounds, "rounds")?,
        evals: finish(evals, "evals")?,
        eval_items: finish(eval_items, "eval items")?,
        judge_check,
        problems,
    })
}

fn run_cells(run: &Run) -> Vec<(String, Cell)> {
    let text = |v: &Option<String>| v.clone().map_or(Cell::Null, Cell::Str);
    let int = |v: Option<u32>| v.map_or(Cell::Null, |v| Cell::Int(i64::from(v)));
    let mut cells = vec![
        ("partitioner".into(), text(&run.partitioner)),
        ("model".into(), text(&run.model)),
        ("status".into(), text(&run.status)),
        ("rounds_completed".into(), int(run.rounds_completed)),
        ("rounds_planned".into(), int(run.rounds_planned)),
        ("path".into(), Cell::Str(run.path.display().to_string())),
    ];
    if let Some(config) = &run.config {
        cells.extend(config::flatten(config));
    }
    cells
}

//! One federated run from start (or its last checkpoint) to the end: [`run`] checks the run
//! directory, prepares the [`Experiment`], restores the [`FederationState`], then runs the
//! rounds' phases ([`super::round`]) and marks the run complete.

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use fedpref_rundir::{write_atomic, Manifest, RunDir, RunStatus};
use serde::{Deserialize, Serialize};

use super::{
    experiment::Experiment,
    manifest::{new_manifest, privacy_summary},
    plan::RunPlan,
    round::{self, RunLogs},
    state::FederationState,
    SweepContext,
};
use crate::{Error, Result};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// `method-aggregator-sSEED`.
    pub name: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Already complete before this invocation.
    pub skipped: bool,
    /// Round this invocation started from (0 unless resumed).
    pub started_at_round: u32,
    /// Wall time of this invocation, seconds.
    pub seconds: f64,
    /// Training tokens per second over this invocation's local steps.
    pub tokens_per_second: f64,
    /// Mean training metrics of each round: `round -> metric -> value`.
    pub round_metrics: Vec<BTreeMap<String, f64>>,
}

/// Runs (or resumes, or skips when complete) one run of a sweep.
///
/// # Errors
/// Data, model, plugin and I/O errors; [`Error::Run`] when the directory holds a run of
/// another config; [`Error::Interrupted`] after Ctrl-C.
pub fn run(plan: &RunPlan, ctx: &mut SweepContext<'_>) -> Result<RunSummary> {
    let started = Instant::now();
    let dir = RunDir::new(&plan.run_dir);
    let _held = dir.lock()?;
    if let Some(done) = check_directory(plan, &dir, ctx)? {
        return Ok(done);
    }
    let mut experiment = Experiment::prepare(plan, ctx)?;
    let mut state = FederationState::resume(&mut experiment, ctx)?;
    let mut logs = RunLogs::open(&experiment, state.metrics_lengths)?;
    let mut manifest = new_manifest(
        plan,
        ctx.host,
        experiment.data_summary.clone(),
        experiment.partition_summary.clone(),
        state.next_round,
    );
    manifest.privacy = privacy_summary(&experiment, state.next_round);
    manifest.write(&dir)?;
    let start_round = state.next_round;
    let rounds = plan.config.federation.rounds;
    let bar = ctx.progress.bar(u64::from(rounds), &experiment.name);
    bar.set_position(u64::from(start_round));
    let (mut tokens, mut train_seconds) = (0usize, 0f64);
    let mut round_metrics = Vec::new();
    for index in start_round..rounds {
        let round_started = Instant::now();
        let round = round::select_clients(&experiment, index);
        let training =
            round::train_clients(&mut experiment, &mut state, &round, ctx, &mut logs, &bar)?;
        (tokens, train_seconds) = (
            tokens + training.tokens,
            train_seconds + training.train_seconds,
        );
        let aggregation = round::aggregate(&mut experiment, &mut state, &round, &training)?;
        let record = round::record(&round, training, aggregation, round_started, &mut logs)?;
        ctx.progress
            .note(&round::round_line(&experiment.name, &record));
        // Before the checkpoint that marks the round done: a kill in between repeats the
        // round (bit for bit) rather than leaving a finished run without its results.
        round::evaluate(&mut experiment, &state, &round, ctx)?;
        round::checkpoint(
            &mut experiment,
            &mut state,
            &round,
            &mut logs,
            &mut manifest,
        )?;
        round_metrics.push(record.train);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !any_round_aggregated(&dir)? {
        let message = "no round could aggregate: every client update was dropped or rejected (metrics/rounds.jsonl says why)";
        manifest.status = RunStatus::Failed;
        manifest.error = Some(message.to_owned());
        manifest.write(&dir)?;
        return Err(Error::Run {
            run_dir: plan.run_dir.clone(),
            message: message.to_owned(),
        });
    }
    manifest.status = RunStatus::Complete;
    manifest.write(&dir)?;
    Ok(RunSummary {
        name: experiment.name,
        run_dir: plan.run_dir.clone(),
        skipped: false,
        started_at_round: start_round,
        seconds: started.elapsed().as_secs_f64(),
        tokens_per_second: if train_seconds > 0.0 {
            tokens as f64 / train_seconds
        } else {
            0.0
        },
        round_metrics,
    })
}

/// Whether any round of the run (this invocation's or earlier ones') combined client updates:
/// a round that did not is recorded with `skipped` set.
fn any_round_aggregated(dir: &RunDir) -> Result<bool> {
    let path = dir.rounds_file();
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .any(|row| row.get("skipped").is_none_or(serde_json::Value::is_null)))
}

/// Refuses a directory holding another config's run, skips a complete run (its summary), and
/// otherwise creates the directory with this run's `config.toml`.
fn check_directory(
    plan: &RunPlan,
    dir: &RunDir,
    ctx: &SweepContext<'_>,
) -> Result<Option<RunSummary>> {
    let name = plan.key.dir_name();
    let config_text = toml::to_string_pretty(&plan.config)
        .map_err(|e| Error::Usage(format!("cannot serialize the config: {e}")))?;
    if let Some(existing) = Manifest::read(dir)? {
        let written = std::fs::read_to_string(dir.config_file()).unwrap_or_default();
        if written != config_text {
            return Err(Error::Run {
                run_dir: plan.run_dir.clone(),
                message: "holds a run with a different config.toml; pick another experiment.name or output_dir, \
                          or delete this directory to start over"
                    .to_owned(),
            });
        }
        if existing.status == RunStatus::Complete {
            ctx.progress
                .note(&format!("{name}: already complete, skipped"));
            return Ok(Some(RunSummary {
                name,
                run_dir: plan.run_dir.clone(),
                skipped: true,
                started_at_round: existing.rounds_completed,
                seconds: 0.0,
                tokens_per_second: 0.0,
                round_metrics: Vec::new(),
            }));
        }
    }
    dir.create()?;
    write_atomic(&dir.config_file(), config_text.as_bytes())?;
    Ok(None)
}

//! The federation: a sweep of runs, each a sequence of rounds in which sampled clients train
//! the global LoRA adapter locally and an aggregator plugin combines their updates.
//!
//! - [`plan`]: the sweep's runs checked against the loaded plugins ([`RunPlan`]), each
//!   rehearsed ([`rehearsal`]) before the first starts.
//! - [`experiment`]: one run prepared for its rounds: data, clients, model, plugins, evaluator.
//! - [`state`]: what changes between rounds and what a checkpoint restores.
//! - [`round`]: one round's phases: select clients, train each, aggregate, record, evaluate,
//!   checkpoint.
//! - [`run`]: one run from its directory check to its last round; resumes from a checkpoint.
//! - [`sampling`]: every random choice derived from (seed, purpose, round, client);
//!   [`schedule`]: the learning rate of each round and the local steps of each client.
//! - [`checkpoint`], [`manifest`]: what a run directory holds (see [`fedpref_rundir`]).
//! - [`worker`] and [`server`]: local training of one client, and a round's sampling and
//!   aggregation, as functions of files, for clients that train where their data lives
//!   (`fedpref client` / `fedpref server`, the Flower app in `deploy/flower/`).
//! - [`isolation`]: each run of a sweep in a process of its own, so a crash costs that run.

pub mod checkpoint;
pub mod experiment;
pub mod isolation;
pub mod links;
pub mod manifest;
pub mod plan;
pub mod rehearsal;
pub mod round;
pub mod run;
pub mod sampling;
pub mod schedule;
pub mod server;
pub mod state;
pub mod worker;

use std::{
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
};

use fedpref_rundir::{Manifest, RunDir, RunStatus};

pub use plan::{plan_one, plan_sweep, RunPlan};
pub use run::RunSummary;

use crate::{
    config::ExperimentConfig,
    eval::{
        across::{AcrossMethods, Contender, Group},
        local_judge::JudgeModel,
    },
    progress::Progress,
    train::ReferenceCache,
    Error, PluginHost, Result,
};

/// Shared across the runs of a sweep.
pub struct SweepContext<'a> {
    /// Loaded plugins.
    pub host: &'a PluginHost,
    /// Raised by Ctrl-C: finish the current step, then stop.
    pub stop: Arc<AtomicBool>,
    /// Reference log-probs shared by the sweep's runs (opened on first use).
    pub reference_cache: Option<ReferenceCache>,
    /// Progress display.
    pub progress: Progress,
    /// Run each run in a process of its own ([`isolation`]); `None`: in this one.
    pub isolation: Option<isolation::Isolation>,
}

/// Runs every run of `config`'s sweep in turn, skipping complete ones and resuming interrupted
/// ones; every component is checked against the plugins before any model loads. With a
/// benchmark judged across methods, the runs go by aggregator and seed instead, and each group
/// is judged as soon as its methods have finished ([`crate::eval::across`]), so a long sweep
/// has judged results before its end.
///
/// A run that fails costs that run: it is marked `failed` in its manifest, with the error, and
/// the sweep goes on with the others.
///
/// # Errors
/// A config that does not fit the plugins, before any run starts; an interruption (Ctrl-C).
pub fn run_sweep(
    config: &ExperimentConfig,
    host: &PluginHost,
    stop: Arc<AtomicBool>,
    progress: Progress,
    isolation: Option<isolation::Isolation>,
) -> Result<SweepResult> {
    let plans = plan_sweep(config, host)?;
    let mut ctx = SweepContext {
        host,
        stop,
        reference_cache: None,
        progress,
        isolation,
    };
    let mut result = SweepResult::default();
    if !config.eval.benchmarks.iter().any(|b| b.across_methods) {
        for plan in &plans {
            result.record(plan, run_plan(plan, &mut ctx), &ctx.progress)?;
        }
        return Ok(result);
    }
    // The judge model loads once, on the first group's verdicts.
    let judge = JudgeModel::new(
        config
            .eval
            .judge_model
            .clone()
            .unwrap_or_else(|| config.model.path.clone()),
    );
    for (mut group, members) in across_groups(&plans) {
        for &i in &members {
            result.record(&plans[i], run_plan(&plans[i], &mut ctx), &ctx.progress)?;
        }
        // Judged among the methods that finished.
        group
            .contenders
            .retain(|c| !result.failed.iter().any(|(dir, _)| *dir == c.run_dir));
        let across = AcrossMethods {
            host,
            judge: &judge,
            progress: &ctx.progress,
            stop: &ctx.stop,
        };
        across.judge(&config.eval, std::slice::from_ref(&group))?;
    }
    Ok(result)
}

/// One run of the sweep, in its own process when the sweep isolates runs.
fn run_plan(plan: &RunPlan, ctx: &mut SweepContext<'_>) -> Result<RunSummary> {
    match &ctx.isolation {
        Some(isolation) => isolation::run_in_child(plan, isolation, &ctx.stop),
        None => run::run(plan, ctx),
    }
}

/// How a sweep's runs ended.
#[derive(Debug, Default)]
pub struct SweepResult {
    /// The runs that finished (or were complete already), in the order they ran.
    pub runs: Vec<RunSummary>,
    /// The runs that failed: their directory and error.
    pub failed: Vec<(PathBuf, Error)>,
}

impl SweepResult {
    /// Keeps a run's summary, or records its failure (in its manifest too) and goes on; an
    /// interruption stops the sweep.
    fn record(
        &mut self,
        plan: &RunPlan,
        outcome: Result<RunSummary>,
        progress: &Progress,
    ) -> Result<()> {
        match outcome {
            Ok(summary) => self.runs.push(summary),
            Err(e @ Error::Interrupted { .. }) => return Err(e),
            Err(e) => {
                progress.note(&format!(
                    "{}: failed, the sweep goes on: {e}",
                    plan.key.dir_name()
                ));
                mark_failed(&plan.run_dir, &e);
                self.failed.push((plan.run_dir.clone(), e));
            }
        }
        Ok(())
    }
}

/// Marks a run's manifest `failed` with the error, when it has one (a run that failed before
/// writing it has nothing to mark). A directory held by another process, or holding another
/// config's run, is not this run's to mark.
fn mark_failed(run_dir: &std::path::Path, error: &Error) {
    // A run's own process marked its failure itself.
    if matches!(
        error,
        Error::Run { .. }
            | Error::InChild { .. }
            | Error::RunDir(fedpref_rundir::Error::Busy { .. })
    ) {
        return;
    }
    write_failed(run_dir, &error.to_string());
}

/// Marks a run's manifest `failed` with `message`, when it has one.
fn write_failed(run_dir: &std::path::Path, message: &str) {
    let dir = RunDir::new(run_dir);
    if let Ok(Some(mut manifest)) = Manifest::read(&dir) {
        manifest.status = RunStatus::Failed;
        manifest.error = Some(message.to_owned());
        // Best effort: the error itself is reported either way.
        let _ = manifest.write(&dir);
    }
}

/// The runs of each aggregator and seed in the sweep's method order, with their indices in
/// `plans`.
fn across_groups(plans: &[RunPlan]) -> Vec<(Group, Vec<usize>)> {
    let mut groups: Vec<(Group, Vec<usize>)> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let label = format!("{}-s{}", plan.key.aggregator, plan.key.seed);
        let contender = Contender {
            method: plan.key.method.clone(),
            run_dir: plan.run_dir.clone(),
        };
        match groups.iter_mut().find(|(g, _)| g.label == label) {
            Some((group, members)) => {
                group.contenders.push(contender);
                members.push(i);
            }
            None => groups.push((
                Group {
                    label,
                    round: plan.config.federation.rounds.saturating_sub(1),
                    contenders: vec![contender],
                },
                vec![i],
            )),
        }
    }
    groups
}

#[cfg(test)]
pub(crate) mod tests;

//! The federation: a sweep of runs, each a sequence of rounds in which sampled clients train
//! the global LoRA adapter locally and an aggregator plugin combines their updates.
//!
//! - [`plan`]: the sweep's runs checked against the loaded plugins ([`RunPlan`]).
//! - [`experiment`]: one run prepared for its rounds: data, clients, model, plugins, evaluator.
//! - [`state`]: what changes between rounds and what a checkpoint restores.
//! - [`round`]: one round's phases: select clients, train each, aggregate, record, evaluate,
//!   checkpoint.
//! - [`run`]: one run from its directory check to its last round; resumes from a checkpoint.
//! - [`sampling`]: every random choice derived from (seed, purpose, round, client);
//!   [`schedule`]: the learning rate of each round and the local steps of each client.
//! - [`checkpoint`], [`manifest`]: what a run directory holds (see [`fedpref_rundir`]).
//! - [`worker`]: local training of one client and aggregation of one round as functions of
//!   files, for clients that train where their data lives.

pub mod checkpoint;
pub mod experiment;
pub mod manifest;
pub mod plan;
pub mod round;
pub mod run;
pub mod sampling;
pub mod schedule;
pub mod state;
pub mod worker;

use std::sync::{atomic::AtomicBool, Arc};

pub use plan::{plan_sweep, RunPlan};
pub use run::RunSummary;

use crate::{
    config::ExperimentConfig,
    eval::{
        across::{AcrossMethods, Contender, Group},
        local_judge::JudgeModel,
    },
    progress::Progress,
    train::ReferenceCache,
    PluginHost, Result,
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
}

/// Runs every run of `config`'s sweep in turn, skipping complete ones and resuming interrupted
/// ones; every component is checked against the plugins before any model loads. With a
/// benchmark judged across methods, the runs go by aggregator and seed instead, and each group
/// is judged as soon as its methods have finished ([`crate::eval::across`]), so a long sweep
/// has judged results before its end.
///
/// # Errors
/// The first run's error; earlier runs' results stay on disk.
pub fn run_sweep(
    config: &ExperimentConfig,
    host: &PluginHost,
    stop: Arc<AtomicBool>,
    progress: Progress,
) -> Result<Vec<RunSummary>> {
    let plans = plan_sweep(config, host)?;
    let mut ctx = SweepContext {
        host,
        stop,
        reference_cache: None,
        progress,
    };
    if !config.eval.benchmarks.iter().any(|b| b.across_methods) {
        return plans.iter().map(|plan| run::run(plan, &mut ctx)).collect();
    }
    // The judge model loads once, on the first group's verdicts.
    let judge = JudgeModel::new(
        config
            .eval
            .judge_model
            .clone()
            .unwrap_or_else(|| config.model.path.clone()),
    );
    let mut summaries = Vec::with_capacity(plans.len());
    for (group, members) in across_groups(&plans) {
        for &i in &members {
            summaries.push(run::run(&plans[i], &mut ctx)?);
        }
        let across = AcrossMethods {
            host,
            judge: &judge,
            progress: &ctx.progress,
            stop: &ctx.stop,
        };
        across.judge(&config.eval, std::slice::from_ref(&group))?;
    }
    Ok(summaries)
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

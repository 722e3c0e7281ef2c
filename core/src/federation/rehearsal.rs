//! Every run of a sweep rehearsed before the first one starts: its loss and partitioner(s) are
//! created with their parameters, and its aggregator aggregates a synthetic round of as many
//! clients as the run will sample. (Scorers, which may read files, are created when each run
//! starts, before it trains.) A rule that cannot work with the configured round
//! (Krum with too few clients for its `byzantine` bound) then fails the sweep at once, naming
//! the run, instead of after the runs before it have trained for an hour.
//!
//! The synthetic round is small (8 parameters, distinct updates) and goes to a throwaway
//! aggregator, so no run's state is touched.

use fedpref_plugin_api::{AggregationInput, ClientUpdate};

use super::RunPlan;
use crate::{plugin_host::params_json, Error, PluginHost, Result};

/// Parameters of the synthetic round.
const REHEARSAL_PARAMS: usize = 8;

/// Rehearses every plan; the first that fails is an [`Error::Usage`] naming its run.
///
/// # Errors
/// [`Error::Usage`] naming the run and the component's error.
pub fn rehearse(plans: &[RunPlan], host: &PluginHost) -> Result<()> {
    for plan in plans {
        rehearse_one(plan, host).map_err(|e| {
            Error::Usage(format!(
                "run {} would fail before its first round: {e}; no run has started",
                plan.key.dir_name()
            ))
        })?;
    }
    Ok(())
}

fn rehearse_one(plan: &RunPlan, host: &PluginHost) -> Result<()> {
    host.loss(&plan.key.method, &plan.loss_params())?;
    let partitioner_params = params_json(Some(&plan.partitioner_params));
    host.partitioner(&plan.partitioner, &partitioner_params)?;
    if let Some((name, params)) = &plan.base_partitioner {
        host.partitioner(name, &params_json(Some(params)))?;
    }
    rehearse_aggregation(plan, host)
}

/// One synthetic round of `clients_per_round` clients through a fresh aggregator.
fn rehearse_aggregation(plan: &RunPlan, host: &PluginHost) -> Result<()> {
    let federation = &plan.config.federation;
    let mut aggregator = host.aggregator(&plan.key.aggregator, &plan.aggregator_params())?;
    let sampled = federation.clients_per_round.min(federation.clients);
    let global = vec![0f32; REHEARSAL_PARAMS];
    let params: Vec<Vec<f32>> = (0..sampled)
        .map(|c| {
            (0..REHEARSAL_PARAMS)
                .map(|j| 0.01 * (c as f32 + 1.0) * if j % 2 == 0 { 1.0 } else { -1.0 })
                .collect()
        })
        .collect();
    for client in 0..sampled {
        aggregator.client_plan(client, &global)?;
    }
    let updates: Vec<ClientUpdate<'_>> = params
        .iter()
        .zip(0..)
        .map(|(p, client)| ClientUpdate {
            client,
            params: p.as_slice().into(),
            n_examples: 1,
            local_steps: 1,
            learning_rate: plan.config.training.lr as f32,
        })
        .collect();
    aggregator.aggregate(&AggregationInput {
        round: 0,
        n_clients: federation.clients,
        global: global.as_slice().into(),
        updates: updates.as_slice().into(),
    })?;
    Ok(())
}

//! Filling in `manifest.json` ([`fedpref_rundir::Manifest`]) from a run: its plugins, data
//! counts, client split and privacy guarantee.

use std::collections::BTreeMap;

use fedpref_plugin_api::{ComponentKind, Metric};
use fedpref_rundir::{
    DataSummary, Machine, Manifest, PartitionSummary, PluginRecord, PrivacySummary, RunStatus,
    LAYOUT_VERSION,
};

use super::{experiment::Experiment, plan::RunPlan, round::example_epsilon_bound};
use crate::{
    data::{ClientData, Splits, TokenizedDataset},
    plugin_host::{metric_map, PluginHost},
    privacy::{epsilon_after, ClientDraw, PrivacyMode},
    train::Unit,
};

/// Counts from the loaded splits and their tokenization.
pub fn data_summary(splits: &Splits, tokenized: &TokenizedDataset) -> DataSummary {
    DataSummary {
        path: splits.train.path.display().to_string(),
        train_examples: splits.train.len(),
        eval_examples: splits.eval.as_ref().map_or(0, |e| e.len()),
        invalid: splits
            .train
            .invalid
            .0
            .iter()
            .map(|(reason, n)| (format!("{reason:?}"), *n))
            .collect(),
        kept: tokenized.lengths.kept,
        truncated: tokenized.lengths.truncated,
        dropped: tokenized.lengths.dropped,
    }
}

/// Summarizes `clients` and their training `units`.
pub fn partition_summary(
    partitioner: &str,
    clients: &ClientData,
    units: &[Vec<Unit>],
    metrics: &[Metric],
) -> PartitionSummary {
    PartitionSummary {
        partitioner: partitioner.to_owned(),
        units: units.iter().map(Vec::len).collect(),
        clients: (0..clients.n_clients())
            .map(|c| {
                let counts = clients.counts(c);
                [counts.pairs, counts.desirable, counts.undesirable]
            })
            .collect(),
        metrics: metric_map(metrics),
    }
}

/// A manifest for `run`, status running.
pub fn new_manifest(
    run: &RunPlan,
    host: &PluginHost,
    data: DataSummary,
    partition: PartitionSummary,
    rounds_completed: u32,
) -> Manifest {
    let mut components = BTreeMap::new();
    for (role, kind, name) in [
        ("loss", ComponentKind::Loss, &run.key.method),
        ("aggregator", ComponentKind::Aggregator, &run.key.aggregator),
        ("partitioner", ComponentKind::Partitioner, &run.partitioner),
    ] {
        if let Ok((_, plugin)) = host.find(kind, name) {
            components.insert(
                role.to_owned(),
                PluginRecord {
                    name: name.clone(),
                    plugin: plugin.manifest.name.to_string(),
                    version: plugin.manifest.version.to_string(),
                    file: plugin.path.display().to_string(),
                },
            );
        }
    }
    Manifest {
        layout_version: LAYOUT_VERSION,
        fedpref_version: env!("CARGO_PKG_VERSION").to_owned(),
        components,
        seed: run.key.seed,
        machine: Machine {
            platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            device: run.config.model.device.clone(),
        },
        data,
        partition,
        status: RunStatus::Running,
        rounds_completed,
        error: None,
        privacy: None,
    }
}

/// The run's privacy guarantee after `rounds` rounds, for its manifest; `None` without DP.
pub fn privacy_summary(experiment: &Experiment, rounds: u32) -> Option<PrivacySummary> {
    let config = &experiment.plan.config;
    let privacy = &config.privacy;
    let (mode, epsilon, sampling, covers) = match privacy.mode {
        PrivacyMode::None => return None,
        PrivacyMode::Client => {
            let draw = config.federation.client_draw();
            let sampling = match draw {
                ClientDraw::Poisson { .. } => "poisson",
                ClientDraw::FixedSize { .. } => "fixed-size",
            };
            (
                "client",
                epsilon_after(privacy, draw, rounds),
                sampling,
                "the released global adapters, against anyone who sees them, for one client's \
                 whole data; not the server, which sees clipped updates before the noise",
            )
        }
        PrivacyMode::Example => (
            "example",
            example_epsilon_bound(
                &experiment.plan,
                experiment.clients.iter().map(|c| c.units.len()),
                rounds,
            ),
            "poisson",
            "each client's updates, and all released from them, against anyone who sees them \
             (the server too), for one example of that client; the largest ε over clients, \
             counting each in every round",
        ),
    };
    Some(PrivacySummary {
        mode: mode.to_owned(),
        epsilon,
        delta: privacy.delta,
        noise_multiplier: privacy.noise_multiplier,
        clip_norm: privacy.clip_norm,
        adaptive_clipping: privacy.adaptive_clipping(),
        sampling: sampling.to_owned(),
        covers: covers.to_owned(),
    })
}

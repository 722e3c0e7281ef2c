//! `manifest.json`: what produced a run (versions, plugins, seed, machine), what its data and
//! partition looked like, and where it stands.

use std::collections::BTreeMap;

use fedpref_plugin_api::{ComponentKind, Metric};
use serde::{Deserialize, Serialize};

use crate::{
    config::RunConfig,
    data::{ClientData, Splits},
    plugin_host::PluginHost,
    run_dir::{write_atomic, RunDir, RunStatus, LAYOUT_VERSION},
    train::{TokenizedDataset, Unit},
    Error, Result,
};

/// The manifest of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Version of the run-directory layout.
    pub layout_version: u32,
    /// Version of fedpref that wrote it.
    pub fedpref_version: String,
    /// Method (loss), aggregator and partitioner with their plugin files and versions.
    pub components: BTreeMap<String, PluginRecord>,
    /// The run's seed.
    pub seed: u64,
    /// Where it ran.
    pub machine: Machine,
    /// The training data.
    pub data: DataSummary,
    /// The client split.
    pub partition: PartitionSummary,
    /// Running, complete or failed.
    pub status: RunStatus,
    /// Rounds finished and checkpointed.
    pub rounds_completed: u32,
}

/// A component and the plugin that provided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// Component name.
    pub name: String,
    /// Plugin package.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// Library file.
    pub file: String,
}

/// The machine a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `std::env::consts::OS`/`ARCH`.
    pub platform: String,
    /// Logical CPUs available.
    pub cpus: usize,
    /// `cpu` (this build).
    pub device: String,
}

/// Counts of the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// The training file.
    pub path: String,
    /// Examples kept for training.
    pub train_examples: usize,
    /// Held-out examples.
    pub eval_examples: usize,
    /// Records skipped as invalid (`data.on_invalid = "skip"`), by reason.
    pub invalid: BTreeMap<String, usize>,
    /// Examples that fitted, were truncated, were dropped as overlong.
    pub kept: usize,
    /// See `kept`.
    pub truncated: usize,
    /// See `kept`.
    pub dropped: usize,
}

impl DataSummary {
    /// Counts from the loaded splits and their tokenization.
    pub fn new(splits: &Splits, tokenized: &TokenizedDataset) -> Self {
        Self {
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
}

/// How the data was split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSummary {
    /// Partitioner component.
    pub partitioner: String,
    /// Training units (pairs or single answers) per client.
    pub units: Vec<usize>,
    /// Pairs, desirable and undesirable answers per client.
    pub clients: Vec<[usize; 3]>,
    /// The partitioner's metrics (e.g. `pairs_on_same_client_share`).
    pub metrics: BTreeMap<String, f64>,
}

impl PartitionSummary {
    /// Summarizes `clients` and their training `units`.
    pub fn new(
        partitioner: &str,
        clients: &ClientData,
        units: &[Vec<Unit>],
        metrics: &[Metric],
    ) -> Self {
        Self {
            partitioner: partitioner.to_owned(),
            units: units.iter().map(Vec::len).collect(),
            clients: (0..clients.n_clients())
                .map(|c| {
                    let counts = clients.counts(c);
                    [counts.pairs, counts.desirable, counts.undesirable]
                })
                .collect(),
            metrics: metrics
                .iter()
                .filter(|m| m.value.is_finite())
                .map(|m| (m.name.to_string(), m.value))
                .collect(),
        }
    }
}

impl Manifest {
    /// A manifest for `run`, status running.
    pub fn new(
        run: &RunConfig,
        host: &PluginHost,
        data: DataSummary,
        partition: PartitionSummary,
        rounds_completed: u32,
    ) -> Self {
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
        Self {
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
        }
    }

    /// Reads the manifest of `dir`, if it has one.
    ///
    /// # Errors
    /// [`Error::Json`] naming the file when it does not parse.
    pub fn read(dir: &RunDir) -> Result<Option<Self>> {
        let path = dir.manifest_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Json {
                    path,
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Writes it atomically.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn write(&self, dir: &RunDir) -> Result<()> {
        let path = dir.manifest_file();
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &json)
    }
}

//! `manifest.json`: what produced a run (versions, plugins, seed, machine), what its data and
//! partition looked like, and where it stands. The host fills it in; analysis reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{write_atomic, Error, Result, RunDir};

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

/// Where a run stands, stored in `manifest.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started, not finished (or killed).
    Running,
    /// Every round and the final evaluation are done.
    Complete,
    /// Stopped by an error; the message is in the manifest.
    Failed,
}

impl Manifest {
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

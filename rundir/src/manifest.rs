//! `manifest.json`: what produced a run (versions, plugins, seed, machine), what its data and
//! partition looked like, and where it stands. The host fills it in; analysis reads it. Reading
//! is lenient: a missing field takes its default, so manifests of older layouts still read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{write_atomic, Error, Result, RunDir};

/// The manifest of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Why the run failed (status `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The differential privacy guarantee, when the run has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacySummary>,
}

/// A run's (ε, δ) and what it protects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrivacySummary {
    /// `client` (one client's data) or `example` (one example of a client).
    pub mode: String,
    /// ε spent by the rounds completed, at `delta`.
    pub epsilon: f64,
    /// The δ.
    pub delta: f64,
    /// The noise multiplier z.
    pub noise_multiplier: f64,
    /// The clip norm (the starting one, when clipping adapts).
    pub clip_norm: f64,
    /// Whether the clip norm followed a quantile of the update norms.
    pub adaptive_clipping: bool,
    /// How the accountant models sampling: `poisson` or `fixed-size`.
    pub sampling: String,
    /// What the guarantee covers and what it does not, in a sentence.
    pub covers: String,
}

/// A component and the plugin that provided it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    /// `std::env::consts::OS`/`ARCH`.
    pub platform: String,
    /// Logical CPUs available.
    pub cpus: usize,
    /// `cpu` (this build).
    pub device: String,
}

/// Counts of the training data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started, not finished (or killed).
    #[default]
    Running,
    /// Every round and the final evaluation are done.
    Complete,
    /// Stopped by an error; the message is in the manifest.
    Failed,
}

impl RunStatus {
    /// `running`, `complete` or `failed`, as written.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Failed => "failed",
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_and_a_partial_one_reads_with_defaults() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let run = RunDir::new(dir.path());
        assert!(Manifest::read(&run).expect("read").is_none());
        let manifest = Manifest {
            seed: 3,
            status: RunStatus::Complete,
            rounds_completed: 4,
            privacy: Some(PrivacySummary {
                mode: "client".into(),
                epsilon: 2.5,
                delta: 1e-5,
                ..PrivacySummary::default()
            }),
            ..Manifest::default()
        };
        manifest.write(&run).expect("write");
        assert_eq!(Manifest::read(&run).expect("read"), Some(manifest));
        std::fs::write(
            run.manifest_file(),
            r#"{"components": {"loss": {"name": "ktor"}}, "seed": 9}"#,
        )
        .expect("write");
        let partial = Manifest::read(&run).expect("read").expect("present");
        assert_eq!(partial.components["loss"].name, "ktor");
        assert_eq!((partial.seed, partial.status), (9, RunStatus::Running));
    }
}

//! The server of a deployed federation as functions of files: the state between rounds, the
//! clients a round samples with the global adapter each is sent, and the aggregation of the
//! updates that come back ([`super::worker`] is the client half). It runs the simulated round's
//! code (the same sampling, client plans, checks and aggregator plugin), so a federation
//! assembled from these calls ends with the simulated run's adapter, bit for bit.
//!
//! The server state (`.safetensors`) holds `global` (f32, p), `aggregator` (u8: the aggregator
//! plugin's state bytes, absent while empty) and metadata `next_round`, `run` and `adapter`
//! ([`super::worker::adapter_identity`]).

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use candle_core::{Device, Tensor};
use fedpref_model::{load_model_as, select_device};
use fedpref_plugin_api::{AggregationInput, ClientUpdate};
use fedpref_rundir::write_atomic;
use serde::Serialize;

use super::{
    experiment::attach_adapter,
    plan::RunPlan,
    round::{
        example_privacy_record, noised_update, rejection, round_lr, round_noise, ClientEvent,
        TrainedClient,
    },
    sampling::round_clients,
    worker::{adapter_identity, damaged, read_update, write_global, UpdateInfo},
};
use crate::{
    plugin_host::{metric_map, AggregatorHandle, MetricMeans},
    privacy::{privatize, PrivacyRecord},
    train::Dropout,
    PluginHost, Result,
};

/// The server between rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    /// The run (`method-aggregator-sSEED`).
    pub run: String,
    /// The adapter's identity; updates of another are rejected.
    pub adapter: String,
    /// The round to run next (0-based).
    pub next_round: u32,
    /// The global adapter, flat f32.
    pub global: Vec<f32>,
    /// The aggregator plugin's saved state (empty before the first aggregation).
    pub aggregator: Vec<u8>,
    /// The clip norm of client-level DP's next round (it moves with adaptive clipping).
    pub clip_norm: f64,
}

impl ServerState {
    /// The state before round 0: the run's seeded initial adapter (the model is loaded for its
    /// shapes and identity).
    ///
    /// # Errors
    /// Model errors.
    pub fn start(plan: &RunPlan) -> Result<Self> {
        let config = &plan.config;
        let device = select_device(&config.model.device)?;
        let mut model = load_model_as(&config.model.path, config.model.dtype.dtype(), &device)?;
        let global = attach_adapter(plan, &mut model)?;
        Ok(Self {
            run: plan.key.dir_name(),
            adapter: adapter_identity(plan, global.len())?,
            next_round: 0,
            global,
            aggregator: Vec::new(),
            clip_norm: config.privacy.clip_norm,
        })
    }

    /// Writes the state, atomically.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut tensors = vec![(
            "global",
            Tensor::from_slice(&self.global, self.global.len(), &Device::Cpu)?,
        )];
        if !self.aggregator.is_empty() {
            let bytes = &self.aggregator;
            tensors.push((
                "aggregator",
                Tensor::from_slice(bytes, bytes.len(), &Device::Cpu)?,
            ));
        }
        let metadata = HashMap::from([
            ("next_round".to_owned(), self.next_round.to_string()),
            ("run".to_owned(), self.run.clone()),
            ("adapter".to_owned(), self.adapter.clone()),
            // Rust prints the shortest decimal that parses back to the same f64.
            ("clip_norm".to_owned(), self.clip_norm.to_string()),
        ]);
        let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (*n, t)), Some(metadata))
            .map_err(|e| damaged(path, e.to_string()))?;
        Ok(write_atomic(path, &bytes)?)
    }

    /// Reads a state written by [`Self::write`], checking that it belongs to `plan`'s run.
    ///
    /// # Errors
    /// I/O errors; [`crate::Error::Checkpoint`] naming the file when it is malformed or of
    /// another run.
    pub fn read(path: &Path, plan: &RunPlan) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| damaged(path, e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let field = |key: &str| {
            metadata
                .get(key)
                .cloned()
                .ok_or_else(|| damaged(path, format!("metadata `{key}` is missing")))
        };
        let mut tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| damaged(path, e.to_string()))?;
        let global = tensors
            .remove("global")
            .ok_or_else(|| damaged(path, "no tensor `global`".to_owned()))?
            .to_vec1::<f32>()
            .map_err(|e| damaged(path, format!("tensor global: {e}")))?;
        let aggregator = match tensors.remove("aggregator") {
            Some(t) => t
                .to_vec1::<u8>()
                .map_err(|e| damaged(path, format!("tensor aggregator: {e}")))?,
            None => Vec::new(),
        };
        let state = Self {
            run: field("run")?,
            adapter: field("adapter")?,
            next_round: field("next_round")?
                .parse()
                .map_err(|e| damaged(path, format!("metadata next_round: {e}")))?,
            global,
            aggregator,
            // A state written before adaptive clipping has none: the configured one.
            clip_norm: match metadata.get("clip_norm") {
                Some(value) => value
                    .parse()
                    .map_err(|e| damaged(path, format!("metadata clip_norm: {e}")))?,
                None => plan.config.privacy.clip_norm,
            },
        };
        if state.run != plan.key.dir_name() {
            return Err(damaged(
                path,
                format!(
                    "holds the state of run {}, the config's run is {}",
                    state.run,
                    plan.key.dir_name()
                ),
            ));
        }
        Ok(state)
    }

    /// Whether every round has run.
    pub fn done(&self, plan: &RunPlan) -> bool {
        self.next_round >= plan.config.federation.rounds
    }
}

/// The clients of the next round and the global adapter file each is sent.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRound {
    /// The round, 0-based.
    pub round: u32,
    /// Rounds in the run.
    pub rounds: u32,
    /// Whether the run is over (nothing else is set).
    pub done: bool,
    /// The round's learning rate.
    pub lr: f64,
    /// The sampled clients, sorted.
    pub sampled: Vec<u32>,
    /// Each sampled client's global adapter and plan ([`write_global`]).
    pub globals: BTreeMap<u32, PathBuf>,
}

/// Samples the next round's clients as the simulated round does and writes, for each, the
/// global adapter with its client plan (SCAFFOLD's correction, FedProx's proximal term) into
/// `out_dir` as `global-<client>.safetensors`.
///
/// # Errors
/// Plugin and I/O errors naming their file.
pub fn plan_round(
    plan: &RunPlan,
    host: &PluginHost,
    state: &ServerState,
    out_dir: &Path,
) -> Result<PlannedRound> {
    let rounds = plan.config.federation.rounds;
    let mut planned = PlannedRound {
        round: state.next_round,
        rounds,
        done: state.done(plan),
        lr: 0.0,
        sampled: Vec::new(),
        globals: BTreeMap::new(),
    };
    if planned.done {
        return Ok(planned);
    }
    planned.lr = round_lr(plan, state.next_round);
    planned.sampled = sampled(plan, state.next_round);
    let aggregator = aggregator(plan, host, state)?;
    std::fs::create_dir_all(out_dir).map_err(|e| crate::Error::io(out_dir, e))?;
    for &client in &planned.sampled {
        let path = out_dir.join(format!("global-{client}.safetensors"));
        write_global(
            &path,
            &state.global,
            &aggregator.client_plan(client, &state.global)?,
        )?;
        planned.globals.insert(client, path);
    }
    Ok(planned)
}

/// A deployed round's record (`metrics/rounds.jsonl`'s fields that the server knows).
#[derive(Debug, Clone, Serialize)]
pub struct AggregatedRound {
    /// The round, 0-based.
    pub round: u32,
    /// Its learning rate.
    pub lr: f64,
    /// The clients sampled.
    pub sampled: Vec<u32>,
    /// The clients whose update was aggregated.
    pub trained: Vec<u32>,
    /// Clients that reported no update, with why.
    pub dropped: Vec<ClientEvent>,
    /// Updates set aside by the checks, with why.
    pub rejected: Vec<ClientEvent>,
    /// Update files that could not be read, with the error.
    pub unreadable: Vec<String>,
    /// Set when no update could be aggregated; the global adapter is unchanged.
    pub skipped: Option<String>,
    /// Bytes of the global adapters and plans sent to the sampled clients, as f32.
    pub bytes_down: u64,
    /// Bytes of the aggregated updates, as f32.
    pub bytes_up: u64,
    /// Tokens the aggregated clients trained on.
    pub tokens: usize,
    /// Mean over the aggregated clients' local steps of the loss and the loss plugin's metrics.
    pub train: BTreeMap<String, f64>,
    /// The aggregator's metrics.
    pub aggregator: BTreeMap<String, f64>,
    /// Clipping and ε spent so far, under client-level differential privacy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyRecord>,
}

/// Checks the updates under `updates` (the `out` paths given to
/// [`super::worker::train_client_from_files`]) and aggregates those that pass, each weighted
/// by its client's number of units, in client order whatever the order of arrival. An update
/// is rejected, with the reason recorded, when it cannot be read, belongs to another run,
/// round or adapter, comes from a client not sampled or twice, has the wrong length, or fails
/// the simulated round's checks (non-finite, diverged loss, update norm). With no update left
/// the round is skipped: the global adapter stays as it was. Returns the next state and the
/// round's record.
///
/// # Errors
/// Plugin errors (an aggregator that fails stops the run, as in a simulated run).
pub fn aggregate_round(
    plan: &RunPlan,
    host: &PluginHost,
    state: &ServerState,
    updates: &[PathBuf],
) -> Result<(ServerState, AggregatedRound)> {
    let index = state.next_round;
    let mut aggregator = aggregator(plan, host, state)?;
    let mut record = AggregatedRound {
        round: index,
        lr: round_lr(plan, index),
        sampled: sampled(plan, index),
        trained: Vec::new(),
        dropped: Vec::new(),
        rejected: Vec::new(),
        unreadable: Vec::new(),
        skipped: None,
        bytes_down: 0,
        bytes_up: 0,
        tokens: 0,
        train: BTreeMap::new(),
        aggregator: BTreeMap::new(),
        privacy: None,
    };
    for &client in &record.sampled {
        let client_plan = aggregator.client_plan(client, &state.global)?;
        let plan_len = client_plan.gradient_offset.len() + client_plan.weight_offset.len();
        record.bytes_down += 4 * (state.global.len() + plan_len) as u64;
    }
    let mut kept = check_updates(plan, state, updates, &mut record);
    kept.sort_by_key(|(_, info)| info.client);
    let mut means = MetricMeans::default();
    for (_, info) in &kept {
        for step in &info.steps {
            record.tokens += step.tokens;
            if !step.has_loss() {
                continue;
            }
            means.add_value("loss", step.loss);
            for (name, value) in &step.metrics {
                means.add_value(name, *value);
            }
        }
    }
    record.train = means.means();
    record.trained = kept.iter().map(|(_, info)| info.client).collect();
    record.bytes_up = 4 * (state.global.len() * kept.len()) as u64;
    let mut next = ServerState {
        next_round: index + 1,
        ..state.clone()
    };
    let config = &plan.config;
    if kept.is_empty() && !config.privacy.client_level() {
        record.skipped =
            Some("no client update survived this round (all dropped or rejected)".to_owned());
        return Ok((next, record));
    }
    let privatized = config
        .privacy
        .client_level()
        .then(|| {
            let params: Vec<&[f32]> = kept.iter().map(|(p, _)| p.as_slice()).collect();
            privatize(
                &config.privacy,
                round_noise(plan, index),
                state.clip_norm,
                &state.global,
                &params,
            )
        })
        .transpose()?;
    let trained: Vec<TrainedClient> = kept
        .iter()
        .map(|(_, info)| TrainedClient {
            client: info.client,
            params: Vec::new(),
            local_steps: info.steps.len() as u32,
            privacy: None,
        })
        .collect();
    let client_updates: Vec<ClientUpdate<'_>> = match &privatized {
        Some(noised) => vec![noised_update(&noised.params, &trained, record.lr)],
        None => kept
            .iter()
            .map(|(params, info)| ClientUpdate {
                client: info.client,
                params: params.as_slice().into(),
                n_examples: info.n_examples,
                local_steps: info.steps.len() as u32,
                learning_rate: info.learning_rate as f32,
            })
            .collect(),
    };
    let output = aggregator.aggregate(&AggregationInput {
        round: index,
        n_clients: plan.config.federation.clients,
        global: state.global.as_slice().into(),
        updates: client_updates.as_slice().into(),
    })?;
    next.global = output.global.into_vec();
    next.aggregator = aggregator.save_state()?;
    record.aggregator = metric_map(&output.metrics);
    if let Some(noised) = &privatized {
        next.clip_norm = noised.next_clip;
    }
    record.privacy = privatized.map(|p| p.record).or_else(|| {
        let steps = kept.iter().flat_map(|(_, info)| &info.steps);
        example_privacy_record(
            steps.filter_map(|s| s.privacy.as_ref()),
            config.privacy.delta,
        )
    });
    Ok((next, record))
}

/// The updates that pass the checks, with their info; the others are recorded in `record` as
/// dropped or rejected.
fn check_updates(
    plan: &RunPlan,
    state: &ServerState,
    updates: &[PathBuf],
    record: &mut AggregatedRound,
) -> Vec<(Vec<f32>, UpdateInfo)> {
    let mut kept: Vec<(Vec<f32>, UpdateInfo)> = Vec::new();
    let reject = |record: &mut AggregatedRound, client: u32, reason: String| {
        record.rejected.push(ClientEvent {
            client,
            what: serde_json::json!({ "reason": reason }),
        });
    };
    for out in updates {
        let (params, info) = match read_update(out) {
            Ok(read) => read,
            Err(e) => {
                record.unreadable.push(e.to_string());
                continue;
            }
        };
        let client = info.client;
        let mismatch = if info.run != state.run {
            Some(format!("{} belongs to run {}", out.display(), info.run))
        } else if info.adapter != state.adapter {
            Some(format!(
                "{} is an update of another adapter ({}; this run's is {})",
                out.display(),
                info.adapter,
                state.adapter
            ))
        } else if info.round != state.next_round {
            Some(format!(
                "{} is for round {}, this is round {}",
                out.display(),
                info.round,
                state.next_round
            ))
        } else if !record.sampled.contains(&client) {
            Some(format!("client {client} was not sampled in this round"))
        } else if kept.iter().any(|(_, k)| k.client == client)
            || record.dropped.iter().any(|d| d.client == client)
        {
            Some(format!("a second update from client {client}"))
        } else {
            None
        };
        if let Some(reason) = mismatch {
            reject(record, client, reason);
            continue;
        }
        let params = match (params, &info.dropped) {
            (_, Some(Dropout::Rejected { step, why })) => {
                reject(record, client, format!("step {step}: {why}"));
                continue;
            }
            (Some(params), None) => params,
            (_, dropped) => {
                record.dropped.push(ClientEvent {
                    client,
                    what: serde_json::to_value(dropped).unwrap_or_default(),
                });
                continue;
            }
        };
        if params.len() != state.global.len() {
            let reason = format!(
                "{} parameters, the global adapter has {}",
                params.len(),
                state.global.len()
            );
            reject(record, client, reason);
            continue;
        }
        let mean_loss =
            info.steps.iter().map(|s| s.loss).sum::<f64>() / info.steps.len().max(1) as f64;
        match rejection(&params, &state.global, mean_loss, &plan.config.training) {
            Some(reason) => reject(record, client, reason),
            None => kept.push((params, info)),
        }
    }
    kept
}

/// The clients the simulated run samples in round `index`.
fn sampled(plan: &RunPlan, index: u32) -> Vec<u32> {
    let federation = &plan.config.federation;
    round_clients(federation, plan.key.seed, index, federation.clients)
}

/// The run's aggregator plugin with the state's saved state loaded.
fn aggregator(plan: &RunPlan, host: &PluginHost, state: &ServerState) -> Result<AggregatorHandle> {
    let mut aggregator = host.aggregator(&plan.key.aggregator, &plan.aggregator_params())?;
    if !state.aggregator.is_empty() {
        aggregator.load_state(&state.aggregator)?;
    }
    Ok(aggregator)
}

//! The server of a deployed federation as functions of files: the state between rounds, the
//! clients a round samples with the global adapter each is sent, and the aggregation of the
//! updates that come back ([`super::worker`] is the client half). It runs the simulated round's
//! code (the same sampling, client plans, checks and aggregator plugin), so a federation
//! assembled from these calls ends with the simulated run's adapter, bit for bit.
//!
//! The server state (`.safetensors`) holds `global` (f32, p), `aggregator` (u8: the aggregator
//! plugin's state bytes, absent while empty), under downlink compression `public` (f32, p: the
//! model the broadcasts add up to) and `broadcast-RRRR` (u8: each round's encoded broadcast),
//! and metadata `next_round`, `run`, `adapter` ([`super::worker::adapter_identity`]),
//! `clip_norm` and `synced` (JSON: each client's first broadcast not yet received).

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
    links::{CompressionRecord, Links},
    plan::RunPlan,
    round::{
        example_privacy_record, noised_update, rejection, round_lr, round_noise, ClientEvent,
        TrainedClient,
    },
    sampling::round_clients,
    state::LinkState,
    worker::{
        adapter_identity, damaged, read_update, write_global, GlobalModel, UpdateInfo, Upload,
    },
};
use crate::{
    compression::sum,
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
    /// Under downlink compression: `x̂`, the broadcasts' sizes and who has had which.
    pub links: LinkState,
    /// Under downlink compression: every round's encoded broadcast so far, the next round's
    /// included.
    pub broadcasts: Vec<Vec<u8>>,
}

impl ServerState {
    /// The state before round 0: the run's seeded initial adapter (the model is loaded for its
    /// shapes and identity).
    ///
    /// # Errors
    /// Model errors.
    pub fn start(plan: &RunPlan, host: &PluginHost) -> Result<Self> {
        let config = &plan.config;
        let device = select_device(&config.model.device)?;
        let mut model = load_model_as(&config.model.path, config.model.dtype.dtype(), &device)?;
        let global = attach_adapter(plan, &mut model)?;
        let links = Links::new(plan, host)?;
        let mut state = Self {
            run: plan.key.dir_name(),
            adapter: adapter_identity(plan, global.len())?,
            next_round: 0,
            links: LinkState {
                public: links.downlink_compressed().then(|| global.clone()),
                ..LinkState::default()
            },
            global,
            aggregator: Vec::new(),
            clip_norm: config.privacy.clip_norm,
            broadcasts: Vec::new(),
        };
        state.broadcast(plan, &links)?;
        Ok(state)
    }

    /// Encodes the next round's broadcast (under downlink compression), as the simulated round
    /// does when it starts.
    fn broadcast(&mut self, plan: &RunPlan, links: &Links) -> Result<()> {
        let (seed, round) = (plan.key.seed, self.next_round);
        if let Some(bytes) =
            links.broadcast(seed, round, &self.global, &mut self.links, &mut None)?
        {
            self.broadcasts.truncate(round as usize);
            self.broadcasts.push(bytes);
        }
        Ok(())
    }

    /// Writes the state, atomically.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut tensors = vec![(
            "global".to_owned(),
            Tensor::from_slice(&self.global, self.global.len(), &Device::Cpu)?,
        )];
        if !self.aggregator.is_empty() {
            let bytes = &self.aggregator;
            tensors.push((
                "aggregator".to_owned(),
                Tensor::from_slice(bytes, bytes.len(), &Device::Cpu)?,
            ));
        }
        if let Some(public) = &self.links.public {
            tensors.push((
                "public".to_owned(),
                Tensor::from_slice(public, public.len(), &Device::Cpu)?,
            ));
        }
        for (round, bytes) in self.broadcasts.iter().enumerate() {
            tensors.push((
                format!("broadcast-{round:04}"),
                Tensor::from_slice(bytes, bytes.len(), &Device::Cpu)?,
            ));
        }
        let synced = serde_json::to_string(&self.links.synced).unwrap_or_default();
        let metadata = HashMap::from([
            ("synced".to_owned(), synced),
            ("next_round".to_owned(), self.next_round.to_string()),
            ("run".to_owned(), self.run.clone()),
            ("adapter".to_owned(), self.adapter.clone()),
            // Rust prints the shortest decimal that parses back to the same f64.
            ("clip_norm".to_owned(), self.clip_norm.to_string()),
        ]);
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
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
        let public = tensors
            .remove("public")
            .map(|t| t.to_vec1::<f32>())
            .transpose()
            .map_err(|e| damaged(path, format!("tensor public: {e}")))?;
        let mut broadcasts = Vec::new();
        while let Some(t) = tensors.remove(&format!("broadcast-{:04}", broadcasts.len())) {
            let bytes = t
                .to_vec1::<u8>()
                .map_err(|e| damaged(path, format!("tensor broadcast: {e}")))?;
            broadcasts.push(bytes);
        }
        let synced = match metadata.get("synced") {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| damaged(path, format!("metadata synced: {e}")))?,
            None => BTreeMap::new(),
        };
        let links = LinkState {
            broadcasts: broadcasts.iter().map(|b| b.len() as u64).collect(),
            public,
            synced,
            residuals: BTreeMap::new(),
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
            links,
            broadcasts,
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
    let links = Links::new(plan, host)?;
    std::fs::create_dir_all(out_dir).map_err(|e| crate::Error::io(out_dir, e))?;
    for &client in &planned.sampled {
        let path = out_dir.join(format!("global-{client}.safetensors"));
        let model = match &state.links.public {
            Some(_) if !links.sends_model(client, state.global.len(), &state.links) => {
                let from = state.links.synced.get(&client).copied().unwrap_or(0);
                let missed = (from..=state.next_round)
                    .filter_map(|r| Some((r, state.broadcasts.get(r as usize)?.clone())))
                    .collect();
                GlobalModel::Broadcasts(missed)
            }
            // Cheaper than the broadcasts missed: the clients' model itself.
            Some(public) => GlobalModel::Params(public.clone()),
            None => GlobalModel::Params(state.global.clone()),
        };
        write_global(
            &path,
            &model,
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
    /// Bytes sent to the sampled clients: global adapters or broadcasts, and plans.
    pub bytes_down: u64,
    /// Bytes of the aggregated updates, as sent.
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
    /// Per-client bytes and the broadcast, when a codec is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionRecord>,
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
    let links = Links::new(plan, host)?;
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
        compression: links.record(),
    };
    if let Some(compression) = &mut record.compression {
        compression.broadcast = state
            .links
            .broadcasts
            .get(index as usize)
            .copied()
            .unwrap_or(0);
    }
    for &client in &record.sampled {
        let client_plan = aggregator.client_plan(client, &state.global)?;
        let plan_len = client_plan.gradient_offset.len() + client_plan.weight_offset.len();
        record.bytes_down += links.downlink_bytes(
            client,
            (state.global.len(), plan_len),
            &state.links,
            &mut record.compression,
        );
    }
    let mut next = ServerState {
        next_round: index + 1,
        ..state.clone()
    };
    let (mut kept, heard) = check_updates(plan, state, &links, updates, &mut record);
    for client in heard {
        links.mark_synced(&mut next.links, index, client);
    }
    kept.sort_by_key(|k| k.info.client);
    record.train = step_means(&kept, &mut record.tokens);
    record.trained = kept.iter().map(|k| k.info.client).collect();
    record.bytes_up = kept.iter().map(|k| k.bytes).sum();
    let config = &plan.config;
    if kept.is_empty() && !config.privacy.client_level() {
        record.skipped =
            Some("no client update survived this round (all dropped or rejected)".to_owned());
    } else {
        aggregate_kept(
            plan,
            (state, &mut next),
            &kept,
            &mut aggregator,
            &mut record,
        )?;
    }
    if next.next_round < config.federation.rounds {
        next.broadcast(plan, &links)?;
    }
    Ok((next, record))
}

/// One update that passed the checks: the parameters it rebuilds, its info, its bytes.
struct Received {
    params: Vec<f32>,
    info: UpdateInfo,
    bytes: u64,
}

/// The means over `kept`'s local steps of the loss and the loss plugin's metrics; `tokens`
/// counts their tokens.
fn step_means(kept: &[Received], tokens: &mut usize) -> BTreeMap<String, f64> {
    let mut means = MetricMeans::default();
    for step in kept.iter().flat_map(|k| &k.info.steps) {
        *tokens += step.tokens;
        if !step.has_loss() {
            continue;
        }
        means.add_value("loss", step.loss);
        for (name, value) in &step.metrics {
            means.add_value(name, *value);
        }
    }
    means.means()
}

/// Privatizes (under client-level DP) and aggregates `kept` from `state` into `next`.
fn aggregate_kept(
    plan: &RunPlan,
    (state, next): (&ServerState, &mut ServerState),
    kept: &[Received],
    aggregator: &mut AggregatorHandle,
    record: &mut AggregatedRound,
) -> Result<()> {
    let (config, index) = (&plan.config, state.next_round);
    let privatized = config
        .privacy
        .client_level()
        .then(|| {
            let params: Vec<&[f32]> = kept.iter().map(|k| k.params.as_slice()).collect();
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
        .map(|k| TrainedClient {
            client: k.info.client,
            params: Vec::new(),
            local_steps: k.info.steps.len() as u32,
            privacy: None,
        })
        .collect();
    let client_updates: Vec<ClientUpdate<'_>> = match &privatized {
        Some(noised) => vec![noised_update(&noised.params, &trained, record.lr)],
        None => kept
            .iter()
            .map(|k| ClientUpdate {
                client: k.info.client,
                params: k.params.as_slice().into(),
                n_examples: k.info.n_examples,
                local_steps: k.info.steps.len() as u32,
                learning_rate: k.info.learning_rate as f32,
            })
            .collect(),
    };
    let output = aggregator.aggregate(&AggregationInput {
        round: index,
        n_clients: config.federation.clients,
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
        let steps = kept.iter().flat_map(|k| &k.info.steps);
        example_privacy_record(
            steps.filter_map(|s| s.privacy.as_ref()),
            config.privacy.delta,
        )
    });
    Ok(())
}

/// The updates that pass the checks, with their info, and the clients heard from (whose
/// update file answered this round, whatever it held); the others are recorded in `record` as
/// dropped or rejected. An encoded update is decoded into `global + decoded`.
fn check_updates(
    plan: &RunPlan,
    state: &ServerState,
    links: &Links,
    updates: &[PathBuf],
    record: &mut AggregatedRound,
) -> (Vec<Received>, Vec<u32>) {
    let mut kept: Vec<Received> = Vec::new();
    let mut heard = Vec::new();
    let reject = |record: &mut AggregatedRound, client: u32, reason: String| {
        record.rejected.push(ClientEvent {
            client,
            what: serde_json::json!({ "reason": reason }),
        });
    };
    for out in updates {
        let (upload, info) = match read_update(out) {
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
        } else if kept.iter().any(|k| k.info.client == client)
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
        heard.push(client);
        let upload = match (upload, &info.dropped) {
            (_, Some(Dropout::Rejected { step, why })) => {
                reject(record, client, format!("step {step}: {why}"));
                continue;
            }
            (Some(upload), None) => upload,
            (_, dropped) => {
                record.dropped.push(ClientEvent {
                    client,
                    what: serde_json::to_value(dropped).unwrap_or_default(),
                });
                continue;
            }
        };
        let (params, bytes) = match rebuild(plan, state, links, (client, upload)) {
            Ok(rebuilt) => rebuilt,
            Err(reason) => {
                reject(record, client, reason);
                continue;
            }
        };
        if let Some(compression) = &mut record.compression {
            compression.up.insert(client, bytes);
        }
        let mean_loss =
            info.steps.iter().map(|s| s.loss).sum::<f64>() / info.steps.len().max(1) as f64;
        match rejection(&params, &state.global, mean_loss, &plan.config.training) {
            Some(reason) => reject(record, client, reason),
            None => kept.push(Received {
                params,
                info,
                bytes,
            }),
        }
    }
    (kept, heard)
}

/// The parameters an upload stands for, and its bytes: float32 parameters as they are (no
/// codec configured), an encoded change decoded onto the global adapter (a codec configured);
/// the other combination, or the wrong size, is why the update is rejected.
fn rebuild(
    plan: &RunPlan,
    state: &ServerState,
    links: &Links,
    (client, upload): (u32, Upload),
) -> std::result::Result<(Vec<f32>, u64), String> {
    let n = state.global.len();
    let (params, bytes) = match upload {
        Upload::Params(params) if !links.compressed() => {
            let bytes = 4 * params.len() as u64;
            (params, bytes)
        }
        Upload::Encoded(bytes) if links.compressed() => {
            let key = (plan.key.seed, state.next_round, client);
            let decoded = links
                .receive_update(key, &bytes, n)
                .map_err(|e| format!("its update does not decode: {e}"))?;
            (sum(&state.global, &decoded), bytes.len() as u64)
        }
        Upload::Params(_) => {
            return Err("sent float32 parameters, but this run's links are compressed".to_owned())
        }
        Upload::Encoded(_) => {
            return Err("sent an encoded update, but this run has no codec".to_owned())
        }
    };
    if params.len() != n {
        return Err(format!(
            "{} parameters, the global adapter has {n}",
            params.len()
        ));
    }
    Ok((params, bytes))
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

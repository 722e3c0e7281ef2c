//! Local training of one client as a function of files, so a client can train where its data
//! lives; [`super::server`] is the other half, aggregation. Both run the code the simulated round
//! runs ([`crate::train::train_client`], the aggregator plugin), so a run assembled from these
//! calls equals the simulated run bit for bit.
//!
//! | file | holds |
//! | --- | --- |
//! | shard (`.jsonl`) | the client's training units, one per line: `{"pair": {"chosen": SEQ, "rejected": SEQ}}` or `{"single": {"answer": SEQ, "desirable": true}}` with `SEQ = {"ids": [..], "answer_mask": [..]}` (see [`write_shard`]) |
//! | global (`.safetensors`) | `params` (f32, p): the global adapter in the flat order of the adapter, or under downlink compression `broadcast-RRRR` (u8): each encoded broadcast the client has not had, by round; `gradient_offset` and `weight_offset` (f32, p) when the client's plan has them; metadata `prox_mu` |
//! | update (`.safetensors` + `.json`) | `params` (f32, p): the client's adapter after training, or with a codec configured `update` (u8): its change, encoded; JSON [`UpdateInfo`]: run, adapter identity, client, round, example count, steps and their records, or why it dropped out |
//! | client state (`.safetensors`) | `m`, `v` (f32, p) and metadata `step`: the client's AdamW moments, kept across rounds with `training.keep_optimizer_state`; `residual` (f32, p): error feedback's residual; `public` (f32, p) and metadata `public_round`: the model the broadcasts add up to, and the first broadcast not yet applied |
//!
//! Reference log-probs, of the units and of the KL sequences each step forms, are computed where
//! the client trains (each sequence alone, so they equal the simulated run's) and cached in the
//! file the caller names.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use candle_core::{Device, Tensor};
use fedpref_model::{load_model_as, model_identity, select_device};
use fedpref_plugin_api::ClientPlan;
use fedpref_rundir::write_atomic;
use serde::{Deserialize, Serialize};

use super::{
    experiment::attach_adapter,
    links::Links,
    plan::RunPlan,
    round::{local_settings, round_lr, Round},
};
use crate::{
    compression::difference,
    plugin_host::PluginHost,
    train::{
        fill_units, train_client, Dropout, LocalJob, LocalOutcome, LocalTrainer, OptimizerState,
        ReferenceCache, ReferenceSource, StepRecord, Unit,
    },
    Error, Result,
};

/// The JSON half of a client update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateInfo {
    /// The run it belongs to (`method-aggregator-sSEED`).
    pub run: String,
    /// What the parameters are ([`adapter_identity`]): an update of another model or adapter
    /// layout is rejected.
    pub adapter: String,
    /// The client.
    pub client: u32,
    /// The round, 0-based.
    pub round: u32,
    /// Training units the client holds (its weight in FedAvg).
    pub n_examples: u64,
    /// The round's learning rate.
    pub learning_rate: f64,
    /// One record per optimizer step taken.
    pub steps: Vec<StepRecord>,
    /// Why no update was produced, when none was.
    pub dropped: Option<Dropout>,
}

/// Where one client's training reads and writes.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    /// The global adapter and this client's plan ([`write_global`]).
    pub global: PathBuf,
    /// The client's units ([`write_shard`]).
    pub shard: PathBuf,
    /// The client's optimizer state from an earlier round, if any.
    pub state: Option<PathBuf>,
    /// The reference log-prob cache of this client (created when missing).
    pub reference_cache: PathBuf,
    /// Written: `<out>.safetensors`, `<out>.json` and, when kept, `<out>.state.safetensors`.
    pub out: PathBuf,
}

/// Writes `units` as a shard file, one unit per JSON line.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_shard(path: &Path, units: &[Unit]) -> Result<()> {
    let mut text = Vec::new();
    for unit in units {
        serde_json::to_writer(&mut text, unit).map_err(|e| json_error(path, &e))?;
        text.push(b'\n');
    }
    Ok(write_atomic(path, &text)?)
}

/// Reads a shard file written by [`write_shard`] (reference log-probs unfilled).
///
/// # Errors
/// I/O errors; [`Error::Json`] naming the file and line of a malformed unit.
pub fn read_shard(path: &Path) -> Result<Vec<Unit>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut units = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        units.push(serde_json::from_str(&line).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: format!("line {}: {e}", number + 1),
        })?);
    }
    if units.is_empty() {
        return Err(Error::Json {
            path: path.to_path_buf(),
            message: "the shard holds no training unit".to_owned(),
        });
    }
    Ok(units)
}

/// What a client is sent of the global model.
#[derive(Debug, Clone, PartialEq)]
pub enum GlobalModel {
    /// The global adapter itself.
    Params(Vec<f32>),
    /// Under downlink compression: the encoded broadcasts the client has not had, by round.
    Broadcasts(Vec<(u32, Vec<u8>)>),
}

/// Writes the global model a client is sent and its plan.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_global(path: &Path, model: &GlobalModel, plan: &ClientPlan) -> Result<()> {
    let mut tensors = Vec::new();
    match model {
        GlobalModel::Params(params) => tensors.push(("params".to_owned(), f32_tensor(params)?)),
        GlobalModel::Broadcasts(broadcasts) => {
            for (round, bytes) in broadcasts {
                tensors.push((broadcast_name(*round), u8_tensor(bytes)?));
            }
        }
    }
    let offsets = [
        ("gradient_offset", &plan.gradient_offset),
        ("weight_offset", &plan.weight_offset),
    ];
    for (name, offset) in offsets.into_iter().filter(|(_, o)| !o.is_empty()) {
        tensors.push((name.to_owned(), f32_tensor(offset)?));
    }
    let metadata = HashMap::from([("prox_mu".to_owned(), plan.prox_mu.to_string())]);
    write_tensors(path, tensors, metadata)
}

/// Reads a file written by [`write_global`].
///
/// # Errors
/// I/O errors; [`Error::Checkpoint`] naming the file for a missing tensor or bad metadata.
pub fn read_global(path: &Path) -> Result<(GlobalModel, ClientPlan)> {
    let (mut tensors, metadata) = read_tensors(path)?;
    let prox_mu = metadata
        .get("prox_mu")
        .map_or(Ok(0.0), |v| v.parse::<f32>())
        .map_err(|e| damaged(path, format!("metadata prox_mu: {e}")))?;
    let mut vector = |name: &str| {
        tensors
            .remove(name)
            .map(|t| f32s_of(path, name, &t))
            .transpose()
    };
    let plan = ClientPlan {
        prox_mu,
        gradient_offset: vector("gradient_offset")?.unwrap_or_default().into(),
        weight_offset: vector("weight_offset")?.unwrap_or_default().into(),
    };
    if let Some(params) = vector("params")? {
        return Ok((GlobalModel::Params(params), plan));
    }
    let mut broadcasts = Vec::new();
    for (name, tensor) in &tensors {
        let round = name
            .strip_prefix("broadcast-")
            .and_then(|r| r.parse::<u32>().ok())
            .ok_or_else(|| damaged(path, format!("unexpected tensor `{name}`")))?;
        broadcasts.push((round, u8s_of(path, name, tensor)?));
    }
    if broadcasts.is_empty() {
        return Err(damaged(
            path,
            "no tensor `params` and no broadcast".to_owned(),
        ));
    }
    broadcasts.sort_by_key(|(round, _)| *round);
    Ok((GlobalModel::Broadcasts(broadcasts), plan))
}

fn broadcast_name(round: u32) -> String {
    format!("broadcast-{round:04}")
}

/// What a client keeps between the rounds it takes part in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientState {
    /// AdamW's moments (`training.keep_optimizer_state`).
    pub optimizer: Option<OptimizerState>,
    /// Error feedback's residual (a biased uplink codec); empty for none.
    pub residual: Vec<f32>,
    /// Under downlink compression, the model the broadcasts add up to, and the first broadcast
    /// not yet applied.
    pub public: Option<(Vec<f32>, u32)>,
}

impl ClientState {
    fn is_empty(&self) -> bool {
        self.optimizer.is_none() && self.residual.is_empty() && self.public.is_none()
    }
}

/// `start` (the client's `x̂`, from `state` or the initial adapter) with `broadcasts` applied:
/// those already applied are skipped, and a missing one is an error.
fn apply_broadcasts(
    links: &Links,
    (seed, path): (u64, &Path),
    mut public: (Vec<f32>, u32),
    broadcasts: &[(u32, Vec<u8>)],
) -> Result<(Vec<f32>, u32)> {
    for (round, bytes) in broadcasts {
        if *round < public.1 {
            continue;
        }
        if *round > public.1 {
            return Err(damaged(
                path,
                format!(
                    "broadcast {round} follows broadcast {} that this client never had; \
                     the server must send every broadcast since the client last took part",
                    public.1
                ),
            ));
        }
        links.receive_broadcast(seed, *round, bytes, &mut public.0)?;
        public.1 = round + 1;
    }
    Ok(public)
}

/// Trains `client` for `round` from `files`, exactly as the simulated round would, and writes
/// its update (and state, when kept).
///
/// # Errors
/// Model, plugin and file errors, each naming its file.
pub fn train_client_from_files(
    plan: &RunPlan,
    host: &PluginHost,
    files: &ClientFiles,
    (round, client): (u32, u32),
) -> Result<UpdateInfo> {
    let config = &plan.config;
    let seed = plan.key.seed;
    let device = select_device(&config.model.device)?;
    let dtype = config.model.dtype.dtype();
    let mut model = load_model_as(&config.model.path, dtype, &device)?;
    let initial = attach_adapter(plan, &mut model)?;
    let pad_id = model.tokenizer.eos().map_or(0, |(_, id)| id);
    let links = Links::new(plan, host)?;
    let mut state = files
        .state
        .as_deref()
        .map(|path| read_state(path, initial.len()))
        .transpose()?
        .unwrap_or_default();
    // The global model first: a client that was sent broadcasts has them, whatever follows.
    let (start, client_plan) = receive_global(&links, (seed, round), files, &initial, &mut state)?;
    let mut units = read_shard(&files.shard)?;
    let mut cache = None;
    if plan.loss_spec.needs_reference || plan.loss_spec.needs_kl_batch {
        let key = format!("{}:{dtype:?}", model_identity(&config.model.path)?);
        let opened = cache.insert(ReferenceCache::open(&files.reference_cache, &key)?);
        fill_units(opened, &model.decoder, &mut units, pad_id, |_| {})?;
    }
    let round = Round {
        index: round,
        lr: round_lr(plan, round),
        sampled: vec![client],
    };
    let job = LocalJob {
        round: round.index,
        client,
        units: &units,
        global: &start,
        plan: &client_plan,
        settings: local_settings(plan, &round, client, units.len()),
        optimizer: state
            .optimizer
            .as_ref()
            .filter(|_| config.training.keep_optimizer_state),
    };
    let loss = host.loss(&plan.key.method, &plan.loss_params())?;
    let mut trainer = LocalTrainer {
        decoder: &mut model.decoder,
        loss: &loss,
        pad_id,
        reference: cache.as_mut().map(|c| c as &mut dyn ReferenceSource),
    };
    let outcome = train_client(&mut trainer, &job, &|| false, &mut |_| {})?;
    let mut info = UpdateInfo {
        run: plan.key.dir_name(),
        adapter: adapter_identity(plan, initial.len())?,
        client,
        round: round.index,
        n_examples: units.len() as u64,
        learning_rate: round.lr,
        steps: Vec::new(),
        dropped: None,
    };
    match outcome {
        LocalOutcome::Dropped(dropout) => info.dropped = Some(dropout),
        LocalOutcome::Trained {
            params,
            steps,
            optimizer,
        } => {
            info.steps = steps;
            let key = (seed, round.index, client);
            write_upload(&links, key, (&start, &params), &mut state, &files.out)?;
            if config.training.keep_optimizer_state {
                state.optimizer = Some(optimizer);
            }
        }
    }
    if !state.is_empty() {
        write_state(&files.out.with_extension("state.safetensors"), &state)?;
    }
    let json = serde_json::to_vec_pretty(&info).map_err(|e| json_error(&files.out, &e))?;
    write_atomic(&files.out.with_extension("json"), &json)?;
    Ok(info)
}

/// The model client training starts from, read from `files.global`, and the client's plan:
/// the global adapter, or `x̂` after the broadcasts sent (kept in `state` for the next round).
fn receive_global(
    links: &Links,
    (seed, round): (u64, u32),
    files: &ClientFiles,
    initial: &[f32],
    state: &mut ClientState,
) -> Result<(Vec<f32>, ClientPlan)> {
    let (sent, plan) = read_global(&files.global)?;
    let start = match sent {
        GlobalModel::Params(params) if params.len() == initial.len() => {
            if links.downlink_compressed() {
                // The server sent the broadcasts' model itself: it holds every one so far.
                state.public = Some((params.clone(), round + 1));
            }
            params
        }
        GlobalModel::Params(params) => {
            return Err(damaged(
                &files.global,
                format!(
                    "{} parameters, this config's adapter has {}: the global adapter belongs to another model or LoRA layout",
                    params.len(),
                    initial.len()
                ),
            ))
        }
        GlobalModel::Broadcasts(broadcasts) => {
            let held = state.public.take().unwrap_or((initial.to_vec(), 0));
            let public = apply_broadcasts(links, (seed, &files.global), held, &broadcasts)?;
            state.public.insert(public).0.clone()
        }
    };
    Ok((start, plan))
}

/// Writes `<out>.safetensors`: the parameters after training, or with a codec configured the
/// change from `start`, encoded (through error feedback's residual in `state`).
fn write_upload(
    links: &Links,
    key: (u64, u32, u32),
    (start, params): (&[f32], &[f32]),
    state: &mut ClientState,
    out: &Path,
) -> Result<()> {
    let upload = if links.compressed() {
        let residual = links.keeps_residual().then_some(&mut state.residual);
        let sent = links.send_update(key, &difference(params, start), residual)?;
        ("update".to_owned(), u8_tensor(&sent.bytes)?)
    } else {
        ("params".to_owned(), f32_tensor(params)?)
    };
    write_tensors(
        &out.with_extension("safetensors"),
        vec![upload],
        HashMap::new(),
    )
}

/// The identity of a run's adapter: the base model's content hash, the LoRA layout and the
/// number of parameters. Updates and states of another identity are refused.
///
/// # Errors
/// I/O errors hashing the model file.
pub fn adapter_identity(plan: &RunPlan, n_params: usize) -> Result<String> {
    let lora = &plan.config.lora;
    Ok(format!(
        "{} {:?}; lora rank {} alpha {} on {}; {n_params} parameters",
        model_identity(&plan.config.model.path)?,
        plan.config.model.dtype.dtype(),
        lora.rank,
        lora.alpha,
        lora.targets.join(",")
    ))
}

/// What a client sent: its parameters, or with a codec configured its encoded change.
#[derive(Debug, Clone, PartialEq)]
pub enum Upload {
    /// The adapter after training, float32.
    Params(Vec<f32>),
    /// `params − start`, encoded by the uplink codec (raw float32 without one).
    Encoded(Vec<u8>),
}

/// Reads the update written under `out` by [`train_client_from_files`]: what it sent (nothing
/// when the client dropped out) and its info.
///
/// # Errors
/// I/O errors; [`Error::Json`] or [`Error::Checkpoint`] naming the malformed file.
pub fn read_update(out: &Path) -> Result<(Option<Upload>, UpdateInfo)> {
    let json_path = out.with_extension("json");
    let bytes = std::fs::read(&json_path).map_err(|e| Error::io(&json_path, e))?;
    let info: UpdateInfo =
        serde_json::from_slice(&bytes).map_err(|e| json_error(&json_path, &e))?;
    if info.dropped.is_some() {
        return Ok((None, info));
    }
    let path = out.with_extension("safetensors");
    let (mut tensors, _) = read_tensors(&path)?;
    let upload = match (tensors.remove("params"), tensors.remove("update")) {
        (Some(params), _) => Upload::Params(f32s_of(&path, "params", &params)?),
        (None, Some(update)) => Upload::Encoded(u8s_of(&path, "update", &update)?),
        (None, None) => return Err(damaged(&path, "no tensor `params` or `update`".to_owned())),
    };
    Ok((Some(upload), info))
}

fn write_state(path: &Path, state: &ClientState) -> Result<()> {
    let mut tensors = Vec::new();
    let mut metadata = HashMap::new();
    if let Some(optimizer) = &state.optimizer {
        tensors.push(("m".to_owned(), f32_tensor(&optimizer.m)?));
        tensors.push(("v".to_owned(), f32_tensor(&optimizer.v)?));
        metadata.insert("step".to_owned(), optimizer.step.to_string());
    }
    if !state.residual.is_empty() {
        tensors.push(("residual".to_owned(), f32_tensor(&state.residual)?));
    }
    if let Some((public, next)) = &state.public {
        tensors.push(("public".to_owned(), f32_tensor(public)?));
        metadata.insert("public_round".to_owned(), next.to_string());
    }
    write_tensors(path, tensors, metadata)
}

/// Reads a client state of an adapter of `n` parameters.
fn read_state(path: &Path, n: usize) -> Result<ClientState> {
    let (mut vectors, metadata) = read_vectors(path)?;
    let count = |key: &str| -> Result<Option<u64>> {
        metadata
            .get(key)
            .map(|s| s.parse::<u64>())
            .transpose()
            .map_err(|_| damaged(path, format!("metadata `{key}` is not a count")))
    };
    let mut sized = |name: &str| -> Result<Option<Vec<f32>>> {
        match vectors.remove(name) {
            Some(v) if v.len() != n => Err(damaged(
                path,
                format!(
                    "`{name}` has {} values, this config's adapter has {n}",
                    v.len()
                ),
            )),
            other => Ok(other),
        }
    };
    let optimizer = match (sized("m")?, sized("v")?, count("step")?) {
        (Some(m), Some(v), Some(step)) => Some(OptimizerState {
            m,
            v,
            step: step as usize,
        }),
        (None, None, None) => None,
        _ => return Err(damaged(path, "`m`, `v` and `step` go together".to_owned())),
    };
    let residual = sized("residual")?.unwrap_or_default();
    let public = match (sized("public")?, count("public_round")?) {
        (Some(public), Some(next)) => Some((public, next as u32)),
        (None, None) => None,
        _ => {
            return Err(damaged(
                path,
                "`public` and `public_round` go together".to_owned(),
            ))
        }
    };
    Ok(ClientState {
        optimizer,
        residual,
        public,
    })
}

fn f32_tensor(values: &[f32]) -> Result<Tensor> {
    Ok(Tensor::from_slice(values, values.len(), &Device::Cpu)?)
}

fn u8_tensor(bytes: &[u8]) -> Result<Tensor> {
    Ok(Tensor::from_slice(bytes, bytes.len(), &Device::Cpu)?)
}

fn f32s_of(path: &Path, name: &str, tensor: &Tensor) -> Result<Vec<f32>> {
    tensor
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| damaged(path, format!("tensor {name}: {e}")))
}

fn u8s_of(path: &Path, name: &str, tensor: &Tensor) -> Result<Vec<u8>> {
    tensor
        .flatten_all()
        .and_then(|t| t.to_vec1::<u8>())
        .map_err(|e| damaged(path, format!("tensor {name}: {e}")))
}

/// Writes named tensors and string metadata as a safetensors file, atomically.
pub(crate) fn write_tensors(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| damaged(path, e.to_string()))?;
    Ok(write_atomic(path, &bytes)?)
}

/// Every tensor of a safetensors file, and its metadata.
pub(crate) fn read_tensors(
    path: &Path,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| damaged(path, e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| damaged(path, e.to_string()))?;
    Ok((tensors, metadata))
}

/// Named flat vectors and the file's string metadata.
pub(crate) type VectorsAndMetadata = (HashMap<String, Vec<f32>>, HashMap<String, String>);

/// Reads every tensor of a safetensors file as a flat f32 vector, and its metadata.
pub(crate) fn read_vectors(path: &Path) -> Result<VectorsAndMetadata> {
    let (tensors, metadata) = read_tensors(path)?;
    let vectors = tensors
        .into_iter()
        .map(|(name, t)| Ok((name.clone(), f32s_of(path, &name, &t)?)))
        .collect::<Result<_>>()?;
    Ok((vectors, metadata))
}

pub(crate) fn damaged(path: &Path, message: String) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message,
    }
}

pub(crate) fn json_error(path: &Path, error: &serde_json::Error) -> Error {
    Error::Json {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

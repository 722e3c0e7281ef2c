//! Local training of one client as a function of files, so a client can train where its data
//! lives; [`super::server`] is the other half, aggregation. Both run the code the simulated round
//! runs ([`crate::train::train_client`], the aggregator plugin), so a run assembled from these
//! calls equals the simulated run bit for bit.
//!
//! | file | holds |
//! | --- | --- |
//! | shard (`.jsonl`) | the client's training units, one per line: `{"pair": {"chosen": SEQ, "rejected": SEQ}}` or `{"single": {"answer": SEQ, "desirable": true}}` with `SEQ = {"ids": [..], "answer_mask": [..]}` (see [`write_shard`]) |
//! | global (`.safetensors`) | `params` (f32, p): the global adapter in the flat order of the adapter; `gradient_offset` and `weight_offset` (f32, p) when the client's plan has them; metadata `prox_mu` |
//! | update (`.safetensors` + `.json`) | `params` (f32, p): the client's adapter after training; JSON [`UpdateInfo`]: run, adapter identity, client, round, example count, steps and their records, or why it dropped out |
//! | client state (`.safetensors`) | `m`, `v` (f32, p) and metadata `step`: the client's AdamW moments, kept across rounds with `training.keep_optimizer_state` |
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
    plan::RunPlan,
    round::{local_settings, round_lr, Round},
};
use crate::{
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

/// Writes the global adapter and one client's plan.
///
/// # Errors
/// I/O errors naming the file.
pub fn write_global(path: &Path, global: &[f32], plan: &ClientPlan) -> Result<()> {
    let mut tensors = vec![("params", global.to_vec())];
    let offsets = [
        ("gradient_offset", &plan.gradient_offset),
        ("weight_offset", &plan.weight_offset),
    ];
    for (name, offset) in offsets.into_iter().filter(|(_, o)| !o.is_empty()) {
        tensors.push((name, offset.to_vec()));
    }
    let metadata = HashMap::from([("prox_mu".to_owned(), plan.prox_mu.to_string())]);
    write_vectors(path, &tensors, metadata)
}

/// Reads a file written by [`write_global`].
///
/// # Errors
/// I/O errors; [`Error::Checkpoint`] naming the file for a missing tensor or bad metadata.
pub fn read_global(path: &Path) -> Result<(Vec<f32>, ClientPlan)> {
    let (mut vectors, metadata) = read_vectors(path)?;
    let params = take(&mut vectors, path, "params")?;
    let prox_mu = metadata
        .get("prox_mu")
        .map_or(Ok(0.0), |v| v.parse::<f32>())
        .map_err(|e| damaged(path, format!("metadata prox_mu: {e}")))?;
    let plan = ClientPlan {
        prox_mu,
        gradient_offset: vectors.remove("gradient_offset").unwrap_or_default().into(),
        weight_offset: vectors.remove("weight_offset").unwrap_or_default().into(),
    };
    Ok((params, plan))
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
    let device = select_device(&config.model.device)?;
    let dtype = config.model.dtype.dtype();
    let mut model = load_model_as(&config.model.path, dtype, &device)?;
    let initial = attach_adapter(plan, &mut model)?;
    let pad_id = model.tokenizer.eos().map_or(0, |(_, id)| id);
    let mut units = read_shard(&files.shard)?;
    let mut cache = None;
    if plan.loss_spec.needs_reference || plan.loss_spec.needs_kl_batch {
        let key = format!("{}:{dtype:?}", model_identity(&config.model.path)?);
        let opened = cache.insert(ReferenceCache::open(&files.reference_cache, &key)?);
        fill_units(opened, &model.decoder, &mut units, pad_id, |_| {})?;
    }
    let (global, client_plan) = read_global(&files.global)?;
    if global.len() != initial.len() {
        return Err(damaged(
            &files.global,
            format!(
                "{} parameters, this config's adapter has {}: the global adapter belongs to another model or LoRA layout",
                global.len(),
                initial.len()
            ),
        ));
    }
    let previous = files.state.as_deref().map(read_state).transpose()?;
    if let Some(state) = previous.as_ref().filter(|s| s.m.len() != initial.len()) {
        return Err(damaged(
            files.state.as_deref().unwrap_or(&files.out),
            format!(
                "optimizer moments of {} parameters, this config's adapter has {}",
                state.m.len(),
                initial.len()
            ),
        ));
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
        global: &global,
        plan: &client_plan,
        settings: local_settings(plan, &round, client, units.len()),
        optimizer: previous
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
            write_vectors(
                &files.out.with_extension("safetensors"),
                &[("params", params)],
                HashMap::new(),
            )?;
            if config.training.keep_optimizer_state {
                write_state(&files.out.with_extension("state.safetensors"), &optimizer)?;
            }
        }
    }
    let json = serde_json::to_vec_pretty(&info).map_err(|e| json_error(&files.out, &e))?;
    write_atomic(&files.out.with_extension("json"), &json)?;
    Ok(info)
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

/// Reads the update written under `out` by [`train_client_from_files`]: its parameters (none
/// when the client dropped out) and info.
///
/// # Errors
/// I/O errors; [`Error::Json`] or [`Error::Checkpoint`] naming the malformed file.
pub fn read_update(out: &Path) -> Result<(Option<Vec<f32>>, UpdateInfo)> {
    let json_path = out.with_extension("json");
    let bytes = std::fs::read(&json_path).map_err(|e| Error::io(&json_path, e))?;
    let info: UpdateInfo =
        serde_json::from_slice(&bytes).map_err(|e| json_error(&json_path, &e))?;
    if info.dropped.is_some() {
        return Ok((None, info));
    }
    let tensors_path = out.with_extension("safetensors");
    let (mut vectors, _) = read_vectors(&tensors_path)?;
    Ok((Some(take(&mut vectors, &tensors_path, "params")?), info))
}

fn write_state(path: &Path, state: &OptimizerState) -> Result<()> {
    let metadata = HashMap::from([("step".to_owned(), state.step.to_string())]);
    write_vectors(
        path,
        &[("m", state.m.clone()), ("v", state.v.clone())],
        metadata,
    )
}

fn read_state(path: &Path) -> Result<OptimizerState> {
    let (mut vectors, metadata) = read_vectors(path)?;
    let step = metadata
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| damaged(path, "metadata `step` is missing or not a count".to_owned()))?;
    Ok(OptimizerState {
        m: take(&mut vectors, path, "m")?,
        v: take(&mut vectors, path, "v")?,
        step,
    })
}

/// Writes named f32 vectors and string metadata as a safetensors file, atomically.
pub(crate) fn write_vectors(
    path: &Path,
    vectors: &[(&str, Vec<f32>)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let tensors: Vec<(&str, Tensor)> = vectors
        .iter()
        .map(|(name, v)| Ok((*name, Tensor::from_slice(v, v.len(), &Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (*n, t)), Some(metadata))
        .map_err(|e| damaged(path, e.to_string()))?;
    Ok(write_atomic(path, &bytes)?)
}

/// Named flat vectors and the file's string metadata.
pub(crate) type VectorsAndMetadata = (HashMap<String, Vec<f32>>, HashMap<String, String>);

/// Reads every tensor of a safetensors file as a flat f32 vector, and its metadata.
pub(crate) fn read_vectors(path: &Path) -> Result<VectorsAndMetadata> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| damaged(path, e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| damaged(path, e.to_string()))?;
    let vectors = tensors
        .into_iter()
        .map(|(name, t)| {
            let values = t
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| damaged(path, format!("tensor {name}: {e}")))?;
            Ok((name, values))
        })
        .collect::<Result<_>>()?;
    Ok((vectors, metadata))
}

pub(crate) fn take(
    vectors: &mut HashMap<String, Vec<f32>>,
    path: &Path,
    name: &str,
) -> Result<Vec<f32>> {
    vectors
        .remove(name)
        .ok_or_else(|| damaged(path, format!("no tensor `{name}`")))
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

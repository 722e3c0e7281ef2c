//! One federated run from start (or its last checkpoint) to the end: data, partition, model,
//! reference log-probs, then rounds of sampling, local training, aggregation and checkpoints.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use candle_core::DType;
use fedpref_plugin_api::{AggregationInput, ClientUpdate, DataNeeds, Metric, PartitionInput};
use serde::Serialize;

use super::{
    checkpoint::{self, CheckpointState},
    manifest::{DataSummary, Manifest, PartitionSummary},
    progress::Progress,
    sampling::{derive, failure_step, sample_clients, Stream},
};
use crate::{
    config::RunConfig,
    data::{example_metas_with_lengths, load_splits, require_pairs, ClientData},
    plugin_host::PluginHost,
    run_dir::{JsonLines, RunDir, RunStatus},
    train::{
        client_units, schedule, tokenize, train_client, Dropout, LocalOutcome, LocalSettings,
        OptimizerState, ReferenceCache, Unit,
    },
    Error, Result,
};
use fedpref_model::{describe, load_model_as, select_device, Adapter, LoraConfig};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// `method-aggregator-sSEED`.
    pub name: String,
    /// The run directory.
    pub run_dir: std::path::PathBuf,
    /// Already complete before this invocation.
    pub skipped: bool,
    /// Round this invocation started from (0 unless resumed).
    pub started_at_round: u32,
    /// Wall time of this invocation, seconds.
    pub seconds: f64,
    /// Training tokens per second over this invocation's local steps.
    pub tokens_per_second: f64,
    /// Mean training metrics of each round: `round -> metric -> value`.
    pub round_metrics: Vec<BTreeMap<String, f64>>,
}

/// One `metrics/rounds.jsonl` row.
#[derive(Debug, Clone, Serialize)]
struct RoundRecord {
    round: u32,
    lr: f64,
    sampled: Vec<u32>,
    trained: Vec<u32>,
    dropped: Vec<ClientEvent>,
    rejected: Vec<ClientEvent>,
    /// Set when no update could be aggregated; the global adapter is unchanged.
    skipped: Option<String>,
    bytes_down: u64,
    bytes_up: u64,
    tokens: usize,
    seconds: f64,
    /// Of `seconds`: filling reference log-probs of clients sampled for the first time.
    reference_seconds: f64,
    /// Of `seconds`: local training (every step of every client).
    train_seconds: f64,
    aggregation_seconds: f64,
    /// Mean over the round's local steps of the loss and the loss plugin's metrics.
    train: BTreeMap<String, f64>,
    /// The aggregator's metrics.
    aggregator: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
struct ClientEvent {
    client: u32,
    #[serde(flatten)]
    what: serde_json::Value,
}

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

fn metric_map(metrics: &[Metric]) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .filter(|m| m.value.is_finite())
        .map(|m| (m.name.to_string(), m.value))
        .collect()
}

/// Runs (or resumes, or skips when complete) one run of a sweep.
///
/// # Errors
/// Data, model, plugin and I/O errors; [`Error::Run`] when training produced non-finite
/// weights or was interrupted.
pub fn run(run: &RunConfig, ctx: &mut SweepContext<'_>) -> Result<RunSummary> {
    let started = Instant::now();
    let dir = RunDir::new(&run.run_dir);
    let name = run.key.dir_name();
    let config_text = toml::to_string_pretty(&run.config)
        .map_err(|e| Error::Usage(format!("cannot serialize the config: {e}")))?;
    let mut manifest = Manifest::read(&dir)?;
    if let Some(existing) = &manifest {
        let written = std::fs::read_to_string(dir.config_file()).unwrap_or_default();
        if written != config_text {
            return Err(Error::Run {
                run_dir: run.run_dir.clone(),
                message: "holds a run with a different config.toml; pick another experiment.name or output_dir, \
                          or delete this directory to start over"
                    .to_owned(),
            });
        }
        if existing.status == RunStatus::Complete {
            ctx.progress
                .note(&format!("{name}: already complete, skipped"));
            return Ok(RunSummary {
                name,
                run_dir: run.run_dir.clone(),
                skipped: true,
                started_at_round: existing.rounds_completed,
                seconds: 0.0,
                tokens_per_second: 0.0,
                round_metrics: Vec::new(),
            });
        }
    }
    dir.create()?;
    crate::run_dir::write_atomic(&dir.config_file(), config_text.as_bytes())?;
    let config = &run.config;
    let seed = run.key.seed;

    // Data: everything that can be wrong with it is found before the model loads.
    let splits = load_splits(&config.data, derive(seed, Stream::EvalSplit, 0, 0))?;
    if run.loss_spec.data == DataNeeds::Paired {
        require_pairs(&splits.train, &run.key.method)?;
    }
    let device = select_device(&config.model.device)?;
    let dtype = config.model.dtype.dtype();
    ctx.progress.note(&format!(
        "{name}: loading {} ({dtype:?} on {})",
        config.model.path.display(),
        describe(&device)
    ));
    let mut model = load_model_as(&config.model.path, dtype, &device)?;
    let template = model.chat_template()?;
    let tokenized = tokenize(&splits.train, &model.tokenizer, &template, &config.data)?;
    let lengths: Vec<u32> = tokenized
        .examples
        .iter()
        .map(|e| e.as_ref().map_or(0, |e| e.max_len() as u32))
        .collect();
    let metas = example_metas_with_lengths(&splits.train, &lengths, config.data.n_buckets);
    let partitioner = ctx.host.partitioner(
        &run.partitioner,
        &serde_json::to_value(&run.partitioner_params).unwrap_or_default(),
    )?;
    let partition = partitioner.partition(&PartitionInput {
        examples: metas.as_slice().into(),
        n_clients: config.federation.clients,
        seed: derive(seed, Stream::Partition, 0, 0),
    })?;
    let clients = ClientData::from_partition(&run.partitioner, &partition, &metas)?;
    let n_clients = clients.n_clients() as u32;
    let mut units: Vec<Vec<Unit>> = (0..n_clients)
        .map(|c| {
            client_units(
                clients.client(c as usize),
                &tokenized,
                run.loss_spec,
                derive(seed, Stream::KlPairing, 0, u64::from(c)),
            )
        })
        .collect();
    if let Some(empty) = units.iter().position(Vec::is_empty) {
        return Err(Error::Run {
            run_dir: run.run_dir.clone(),
            message: format!("client {empty} has no training data after partitioning; use fewer clients or more data"),
        });
    }
    let pad_id = model.tokenizer.eos().map_or(0, |(_, id)| id);
    // Scorers and benchmark files are checked here, so a bad [eval] fails before training.
    let mut evaluator = crate::eval::Evaluator::new(
        &config.eval,
        ctx.host,
        &run.run_dir,
        &model,
        splits.eval.as_ref(),
        &config.data,
        None,
    )?;

    let needs_reference = run.loss_spec.needs_reference || run.loss_spec.needs_kl_batch;
    if needs_reference && ctx.reference_cache.is_none() {
        let cache_path = dir
            .root()
            .parent()
            .unwrap_or(dir.root())
            .join("cache/reference-logprobs.bin");
        ctx.reference_cache = Some(ReferenceCache::open(
            &cache_path,
            // bf16 reference log-probs differ from f32 ones: the dtype is part of the key.
            &format!("{}:{dtype:?}", model_identity(&config.model.path)),
        )?);
    }
    // Reference log-probs are filled per client on its first sampling (fixed chunks of its
    // units), so clients never sampled cost nothing.
    let mut has_reference = vec![!needs_reference; n_clients as usize];

    let lora = LoraConfig::new(
        config.lora.rank,
        config.lora.alpha,
        config.lora.dropout,
        &config
            .lora
            .targets
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )?;
    let adapter = Adapter::new(
        &lora,
        model.decoder.config(),
        derive(seed, Stream::AdapterInit, 0, 0),
        DType::F32,
        &device,
    )?;
    let mut global = adapter.flatten()?;
    model.decoder.attach_adapter(adapter)?;
    let loss = ctx.host.loss(&run.key.method, &run.loss_params())?;
    let mut aggregator = ctx
        .host
        .aggregator(&run.key.aggregator, &run.aggregator_params())?;
    let mut optimizers: BTreeMap<u32, OptimizerState> = BTreeMap::new();
    let mut start_round = 0;
    // A fresh start truncates metrics left by a run killed before its first checkpoint.
    let mut lengths_to_keep = (0, 0);
    if let Some(checkpoint_dir) = dir.latest_checkpoint()? {
        let restored = checkpoint::read(&checkpoint_dir)?;
        if restored.global.len() != global.len() {
            return Err(Error::Checkpoint {
                path: checkpoint_dir,
                message: format!(
                    "{} parameters, this config's adapter has {}",
                    restored.global.len(),
                    global.len()
                ),
            });
        }
        global = restored.global;
        aggregator.load_state(&restored.aggregator)?;
        optimizers = restored.optimizers;
        start_round = restored.state.round + 1;
        lengths_to_keep = (restored.state.steps_len, restored.state.rounds_len);
        ctx.progress.note(&format!(
            "{name}: resuming after round {}",
            restored.state.round
        ));
    }
    let mut steps_log = JsonLines::open(&dir.steps_file(), Some(lengths_to_keep.0))?;
    let mut rounds_log = JsonLines::open(&dir.rounds_file(), Some(lengths_to_keep.1))?;

    let data_summary = DataSummary::new(&splits, &tokenized);
    let partition_summary =
        PartitionSummary::new(&run.partitioner, &clients, &units, &partition.metrics);
    let manifest_now = Manifest::new(run, ctx.host, data_summary, partition_summary, start_round);
    manifest_now.write(&dir)?;
    manifest = Some(manifest_now);

    let federation = &config.federation;
    let training = &config.training;
    let units_per_step = training.batch_size * training.grad_accum;
    let n_params = global.len();
    let round_bar = ctx.progress.bar(u64::from(federation.rounds), &name);
    round_bar.set_position(u64::from(start_round));
    let mut tokens_total = 0usize;
    let mut train_seconds = 0f64;
    let mut round_metrics = Vec::new();
    for round in start_round..federation.rounds {
        let round_started = Instant::now();
        let lr = schedule::round_lr(training.lr, training.lr_min, round, federation.rounds);
        let sampled = sample_clients(
            seed,
            round,
            n_clients,
            federation.clients_per_round.min(n_clients),
        );
        let mut updates: Vec<(u32, Vec<f32>, u32)> = Vec::new();
        let (mut dropped, mut rejected) = (Vec::new(), Vec::new());
        let mut step_sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        let mut round_tokens = 0;
        let (mut reference_seconds, mut round_train_seconds) = (0f64, 0f64);
        let mut bytes_down = 0u64;
        for &client in &sampled {
            let plan = aggregator.client_plan(client, &global)?;
            bytes_down += 4 * (n_params + plan.gradient_offset.len()) as u64;
            if !has_reference[client as usize] {
                let reference_started = Instant::now();
                if let Some(cache) = ctx.reference_cache.as_mut() {
                    fill_reference(
                        cache,
                        &model.decoder,
                        &mut units[client as usize],
                        pad_id,
                        &ctx.progress,
                        &name,
                    )?;
                }
                has_reference[client as usize] = true;
                reference_seconds += reference_started.elapsed().as_secs_f64();
            }
            let client_units = &units[client as usize];
            let steps = schedule::local_steps(
                training.local_steps,
                client_units.len(),
                units_per_step,
                federation,
            );
            model
                .decoder
                .adapter()
                .ok_or_else(|| Error::Usage("the adapter is not attached".to_owned()))?
                .unflatten(&global)?;
            let settings = LocalSettings {
                steps,
                batch_size: training.batch_size,
                grad_accum: training.grad_accum,
                lr,
                max_grad_norm: training.max_grad_norm,
                weight_decay: training.weight_decay,
                seed: derive(
                    seed,
                    Stream::LocalTraining,
                    u64::from(round),
                    u64::from(client),
                ),
                deadline: federation
                    .deadline_seconds
                    .map(|s| Instant::now() + std::time::Duration::from_secs_f64(s)),
                fail_before_step: failure_step(seed, round, client, federation.dropout, steps),
            };
            let previous = if training.keep_optimizer_state {
                optimizers.get(&client)
            } else {
                None
            };
            let stop = || ctx.stop.load(Ordering::SeqCst);
            let client_started = Instant::now();
            let outcome = train_client(
                &mut model.decoder,
                &loss,
                client_units,
                &global,
                &plan,
                &settings,
                previous,
                pad_id,
                &stop,
                |record| {
                    round_bar.set_message(format!(
                        "round {}/{} client {client} step {}/{steps} loss {:.4}",
                        round + 1,
                        federation.rounds,
                        record.step + 1,
                        record.loss
                    ));
                },
                round,
                client,
            )?;
            round_train_seconds += client_started.elapsed().as_secs_f64();
            match outcome {
                LocalOutcome::Dropped(Dropout::Interrupted) => {
                    return Err(Error::Interrupted {
                        run_dir: run.run_dir.clone(),
                        round,
                    });
                }
                LocalOutcome::Dropped(dropout) => {
                    dropped.push(ClientEvent {
                        client,
                        what: serde_json::to_value(&dropout).unwrap_or_default(),
                    });
                }
                LocalOutcome::Trained {
                    params,
                    steps: records,
                    optimizer,
                } => {
                    for record in &records {
                        steps_log.append(record)?;
                        round_tokens += record.tokens;
                        for (k, v) in record
                            .metrics
                            .iter()
                            .chain([(&"loss".to_owned(), &record.loss)])
                        {
                            let entry = step_sums.entry(k.clone()).or_default();
                            entry.0 += v;
                            entry.1 += 1;
                        }
                    }
                    let mean_loss =
                        records.iter().map(|r| r.loss).sum::<f64>() / records.len().max(1) as f64;
                    if let Some(reason) = rejection(&params, mean_loss, training.max_loss) {
                        rejected.push(ClientEvent {
                            client,
                            what: serde_json::json!({ "reason": reason }),
                        });
                    } else {
                        if training.keep_optimizer_state {
                            optimizers.insert(client, optimizer);
                        }
                        updates.push((client, params, steps));
                    }
                }
            }
        }
        tokens_total += round_tokens;
        train_seconds += round_train_seconds;
        let aggregation_started = Instant::now();
        let (skipped, aggregator_metrics) = if updates.is_empty() {
            (
                Some("no client update survived this round (all dropped or rejected)".to_owned()),
                BTreeMap::new(),
            )
        } else {
            let client_updates: Vec<ClientUpdate<'_>> = updates
                .iter()
                .map(|(client, params, steps)| ClientUpdate {
                    client: *client,
                    params: params.as_slice().into(),
                    n_examples: units[*client as usize].len() as u64,
                    local_steps: *steps,
                    learning_rate: lr as f32,
                })
                .collect();
            let output = aggregator.aggregate(&AggregationInput {
                round,
                n_clients,
                global: global.as_slice().into(),
                updates: client_updates.as_slice().into(),
            })?;
            global = output.global.into_vec();
            (None, metric_map(&output.metrics))
        };
        let train: BTreeMap<String, f64> = step_sums
            .into_iter()
            .map(|(k, (s, n))| (k, s / n as f64))
            .collect();
        let record = RoundRecord {
            round,
            lr,
            sampled: sampled.clone(),
            trained: updates.iter().map(|u| u.0).collect(),
            dropped,
            rejected,
            skipped,
            bytes_down,
            bytes_up: 4 * (n_params * updates.len()) as u64,
            tokens: round_tokens,
            seconds: round_started.elapsed().as_secs_f64(),
            reference_seconds,
            train_seconds: round_train_seconds,
            aggregation_seconds: aggregation_started.elapsed().as_secs_f64(),
            train: train.clone(),
            aggregator: aggregator_metrics,
        };
        rounds_log.append(&record)?;
        let state = CheckpointState {
            round,
            steps_len: steps_log.sync()?,
            rounds_len: rounds_log.sync()?,
            n_params,
        };
        let aggregator_state = aggregator.save_state()?;
        dir.write_checkpoint(round, |tmp| {
            checkpoint::write(tmp, &state, &global, &aggregator_state, &optimizers)?;
            let adapter = model
                .decoder
                .adapter()
                .ok_or_else(|| Error::Usage("the adapter is not attached".to_owned()))?;
            adapter.unflatten(&global)?;
            Ok(fedpref_model::save_adapter(
                adapter,
                tmp,
                &config.model.path.display().to_string(),
            )?)
        })?;
        dir.prune_checkpoints(round)?;
        if let Some(m) = manifest.as_mut() {
            m.rounds_completed = round + 1;
            m.write(&dir)?;
        }
        ctx.progress.note(&round_line(&name, &record));
        if config
            .eval
            .due(round, federation.rounds, federation.eval_every)
        {
            evaluator.evaluate(
                &model,
                &global,
                crate::eval::Target::Round(round),
                &ctx.progress,
                &name,
            )?;
        }
        round_metrics.push(train);
        round_bar.inc(1);
    }
    round_bar.finish_and_clear();
    if let Some(m) = manifest.as_mut() {
        m.status = RunStatus::Complete;
        m.write(&dir)?;
    }
    Ok(RunSummary {
        name,
        run_dir: run.run_dir.clone(),
        skipped: false,
        started_at_round: start_round,
        seconds: started.elapsed().as_secs_f64(),
        tokens_per_second: if train_seconds > 0.0 {
            tokens_total as f64 / train_seconds
        } else {
            0.0
        },
        round_metrics,
    })
}

/// Fills the reference log-probs of one client's units from the cache, computing missing ones.
fn fill_reference(
    cache: &mut ReferenceCache,
    decoder: &fedpref_model::Decoder,
    units: &mut [Unit],
    pad_id: u32,
    progress: &Progress,
    name: &str,
) -> Result<()> {
    let mut scored: Vec<&mut crate::train::units::Scored> =
        units.iter_mut().flat_map(Unit::scored_mut).collect();
    let sequences: Vec<_> = scored.iter().map(|s| s.sequence.clone()).collect();
    let bar = progress.bar(
        sequences.len() as u64,
        &format!("{name}: reference log-probs"),
    );
    let values = cache.fill(decoder, &sequences, pad_id, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    for (s, v) in scored.iter_mut().zip(values) {
        s.reference = v;
    }
    Ok(())
}

/// Why a client update must not be aggregated, if it must not.
fn rejection(params: &[f32], mean_loss: f64, max_loss: f64) -> Option<String> {
    if let Some(i) = params.iter().position(|p| !p.is_finite()) {
        return Some(format!("parameter {i} is {}", params[i]));
    }
    if !mean_loss.is_finite() || mean_loss > max_loss {
        return Some(format!(
            "the local loss diverged (mean {mean_loss}, limit training.max_loss = {max_loss})"
        ));
    }
    None
}

fn round_line(name: &str, record: &RoundRecord) -> String {
    let pick = |key: &str| {
        record
            .train
            .get(key)
            .map_or("-".to_owned(), |v| format!("{v:.4}"))
    };
    let mut line = format!(
        "{name} round {}: loss {} margin {} accuracy {} | {} trained",
        record.round,
        pick("loss"),
        pick("rewards/margins"),
        pick("rewards/accuracies"),
        record.trained.len()
    );
    if !record.dropped.is_empty() {
        line.push_str(&format!(", {} dropped", record.dropped.len()));
    }
    if !record.rejected.is_empty() {
        line.push_str(&format!(", {} rejected", record.rejected.len()));
    }
    if let Some(reason) = &record.skipped {
        line.push_str(&format!(" (skipped: {reason})"));
    }
    // Training tokens/s over the training time only: reference log-probs (a forward-only pass
    // over every sequence of a newly sampled client) are reported apart.
    line.push_str(&format!(" | {:.1} s", record.seconds));
    if record.reference_seconds >= 0.05 {
        line.push_str(&format!(
            " ({:.1} s reference log-probs)",
            record.reference_seconds
        ));
    }
    line.push_str(&format!(
        ", training {:.0} tokens/s",
        record.tokens as f64 / record.train_seconds.max(1e-9)
    ));
    line
}

/// Identifies the model file for the reference cache: its canonical path, size and mtime.
fn model_identity(path: &std::path::Path) -> String {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let modified = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    format!("{}:{size}:{modified}", canonical.display())
}

//! One round, as named phases: [`select_clients`] -> [`train_clients`] -> [`aggregate`] ->
//! [`record`] -> [`evaluate`] -> [`checkpoint`] (results first: the checkpoint marks the round
//! done). Each phase reads the prepared
//! [`Experiment`] and the [`FederationState`] and changes only what its name says.

use std::{
    collections::BTreeMap,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use fedpref_plugin_api::{AggregationInput, ClientPlan, ClientUpdate};
use fedpref_rundir::JsonLines;
use indicatif::ProgressBar;
use serde::Serialize;

use super::{
    checkpoint::{self, CheckpointState},
    experiment::{ClientShard, Experiment},
    links::{start_model, CompressionRecord, Links},
    manifest::privacy_summary,
    plan::RunPlan,
    sampling::{derive, failure_step, round_clients, Stream},
    schedule,
    state::FederationState,
    SweepContext,
};
use crate::{
    config::TrainingSection,
    eval::Target,
    plugin_host::{metric_map, MetricMeans},
    privacy::{poisson_gaussian_epsilon, privatize, PrivacyRecord, RoundNoise},
    progress::Progress,
    train::{
        fill_units, train_client, Dropout, ExamplePrivacy, LocalJob, LocalOutcome, LocalSettings,
        LocalTrainer, ReferenceCache, ReferenceSource, StepPrivacy,
    },
    Error, Result,
};

/// A round's index, learning rate and sampled clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// 0-based.
    pub index: u32,
    /// This round's learning rate (cosine over rounds).
    pub lr: f64,
    /// The clients sampled to train, sorted.
    pub sampled: Vec<u32>,
}

/// The append-only metrics files a run writes each round.
pub struct RunLogs {
    /// `metrics/steps.jsonl`.
    pub steps: JsonLines,
    /// `metrics/rounds.jsonl`.
    pub rounds: JsonLines,
}

impl RunLogs {
    /// Opens both files, cut back to `lengths` (the last checkpoint's; `(0, 0)` for a fresh
    /// start, which drops rows a run killed before its first checkpoint left).
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn open(experiment: &Experiment, lengths: (u64, u64)) -> Result<Self> {
        Ok(Self {
            steps: JsonLines::open(&experiment.dir.steps_file(), Some(lengths.0))?,
            rounds: JsonLines::open(&experiment.dir.rounds_file(), Some(lengths.1))?,
        })
    }
}

/// A client that returned no update, with why (`{"client": 3, "reason": ...}` in the record).
#[derive(Debug, Clone, Serialize)]
pub struct ClientEvent {
    /// The client.
    pub client: u32,
    /// What happened, as a JSON object.
    #[serde(flatten)]
    pub what: serde_json::Value,
}

/// A client update that survived the round's checks.
#[derive(Debug, Clone)]
pub struct TrainedClient {
    /// The client.
    pub client: u32,
    /// Its new flat adapter parameters.
    pub params: Vec<f32>,
    /// Optimizer steps it took.
    pub local_steps: u32,
    /// Under example-level DP: its steps' samples, clipping and ε.
    pub privacy: Option<StepPrivacy>,
}

/// What [`train_clients`] produced.
#[derive(Debug, Default)]
pub struct RoundTraining {
    /// Updates to aggregate.
    pub trained: Vec<TrainedClient>,
    /// Clients that failed, missed the deadline or were stopped.
    pub dropped: Vec<ClientEvent>,
    /// Clients whose update failed the checks (non-finite, diverged).
    pub rejected: Vec<ClientEvent>,
    /// Mean over the round's local steps of the loss and the loss plugin's metrics.
    pub means: MetricMeans,
    /// Tokens through the model.
    pub tokens: usize,
    /// Seconds filling reference log-probs of clients sampled for the first time.
    pub reference_seconds: f64,
    /// Seconds of local training.
    pub train_seconds: f64,
    /// Bytes sent to clients (global adapter or broadcasts, and plans).
    pub bytes_down: u64,
    /// Bytes of the updates aggregated.
    pub bytes_up: u64,
    /// Per-client bytes and codec times, when a codec is configured.
    pub compression: Option<CompressionRecord>,
}

/// What [`aggregate`] produced.
#[derive(Debug, Default)]
pub struct Aggregation {
    /// Why no update was aggregated, if none was; the global adapter is then unchanged.
    pub skipped: Option<String>,
    /// The aggregator's metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Seconds aggregating.
    pub seconds: f64,
    /// Clipping and ε, under client-level differential privacy.
    pub privacy: Option<PrivacyRecord>,
}

/// One `metrics/rounds.jsonl` row.
#[derive(Debug, Clone, Serialize)]
pub struct RoundRecord {
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
    pub train: BTreeMap<String, f64>,
    /// The aggregator's metrics.
    aggregator: BTreeMap<String, f64>,
    /// Clipping and ε spent so far, under client-level differential privacy.
    #[serde(skip_serializing_if = "Option::is_none")]
    privacy: Option<PrivacyRecord>,
    /// Per-client bytes, the broadcast and codec times, when a codec is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    compression: Option<CompressionRecord>,
}

/// The learning rate of round `index` (cosine over the rounds).
pub fn round_lr(plan: &RunPlan, index: u32) -> f64 {
    let config = &plan.config;
    let (federation, training) = (&config.federation, &config.training);
    schedule::round_lr(training.lr, training.lr_min, index, federation.rounds)
}

/// Picks the round's clients (seeded, without replacement) and its learning rate.
pub fn select_clients(experiment: &Experiment, index: u32) -> Round {
    let federation = &experiment.plan.config.federation;
    let n_clients = experiment.n_clients();
    Round {
        index,
        lr: round_lr(&experiment.plan, index),
        sampled: round_clients(federation, experiment.plan.key.seed, index, n_clients),
    }
}

/// Trains each sampled client from the global adapter, logging its steps; updates that fail
/// the checks are set aside as rejected.
///
/// # Errors
/// Model, plugin and I/O errors; [`Error::Interrupted`] when Ctrl-C stopped a client.
pub fn train_clients(
    experiment: &mut Experiment,
    state: &mut FederationState,
    round: &Round,
    ctx: &mut SweepContext<'_>,
    logs: &mut RunLogs,
    bar: &ProgressBar,
) -> Result<RoundTraining> {
    let mut training = RoundTraining {
        compression: experiment.links.record(),
        ..RoundTraining::default()
    };
    let seed = experiment.plan.key.seed;
    let links = &experiment.links;
    links.broadcast(
        seed,
        round.index,
        &state.global,
        &mut state.links,
        &mut training.compression,
    )?;
    for &client in &round.sampled {
        let plan = experiment.aggregator.client_plan(client, &state.global)?;
        let plan_len = plan.gradient_offset.len() + plan.weight_offset.len();
        training.bytes_down += experiment.links.downlink_bytes(
            client,
            (experiment.n_params(), plan_len),
            &state.links,
            &mut training.compression,
        );
        experiment
            .links
            .mark_synced(&mut state.links, round.index, client);
        let reference_started = Instant::now();
        ensure_reference(experiment, client, ctx)?;
        training.reference_seconds += reference_started.elapsed().as_secs_f64();
        let train_started = Instant::now();
        let outcome = train_one(experiment, state, round, client, &plan, ctx, bar)?;
        training.train_seconds += train_started.elapsed().as_secs_f64();
        settle(
            experiment,
            state,
            &mut training,
            (round, client),
            outcome,
            logs,
        )?;
    }
    Links::finish(&state.links, &mut training.compression);
    Ok(training)
}

/// Fills a client's reference log-probs from the sweep's cache on its first sampling.
fn ensure_reference(
    experiment: &mut Experiment,
    client: u32,
    ctx: &mut SweepContext<'_>,
) -> Result<()> {
    let shard = &mut experiment.clients[client as usize];
    if shard.has_reference {
        return Ok(());
    }
    let label = format!("{}: reference log-probs", experiment.name);
    if let Some(cache) = ctx.reference_cache.as_mut() {
        fill_reference(cache, experiment, client, &label, &ctx.progress)?;
    }
    experiment.clients[client as usize].has_reference = true;
    Ok(())
}

/// Fills the reference log-probs of one client's units, computing missing ones.
fn fill_reference(
    cache: &mut ReferenceCache,
    experiment: &mut Experiment,
    client: u32,
    label: &str,
    progress: &Progress,
) -> Result<()> {
    let ClientShard { units, .. } = &mut experiment.clients[client as usize];
    let n: usize = units.iter_mut().map(|u| u.scored_mut().len()).sum();
    let bar = progress.bar(n as u64, label);
    fill_units(
        cache,
        &experiment.model.decoder,
        units,
        experiment.pad_id,
        |k| bar.inc(k as u64),
    )?;
    bar.finish_and_clear();
    Ok(())
}

/// Local training of one sampled client; KL sequences take their reference log-probs from the
/// sweep's cache.
fn train_one(
    experiment: &mut Experiment,
    state: &FederationState,
    round: &Round,
    client: u32,
    plan: &ClientPlan,
    ctx: &mut SweepContext<'_>,
    bar: &ProgressBar,
) -> Result<LocalOutcome> {
    let config = &experiment.plan.config;
    let units = &experiment.clients[client as usize].units;
    let settings = local_settings(&experiment.plan, round, client, units.len());
    let steps = settings.steps;
    let job = LocalJob {
        round: round.index,
        client,
        units,
        global: start_model(&state.global, &state.links),
        plan,
        settings,
        optimizer: config
            .training
            .keep_optimizer_state
            .then(|| state.optimizers.get(&client))
            .flatten(),
    };
    let stop_flag = ctx.stop.clone();
    let mut trainer = LocalTrainer {
        decoder: &mut experiment.model.decoder,
        loss: &experiment.loss,
        pad_id: experiment.pad_id,
        reference: ctx
            .reference_cache
            .as_mut()
            .map(|cache| cache as &mut dyn ReferenceSource),
    };
    let rounds = config.federation.rounds;
    let stop = || stop_flag.load(Ordering::SeqCst);
    train_client(&mut trainer, &job, &stop, &mut |record| {
        bar.set_message(format!(
            "round {}/{rounds} client {client} step {}/{steps} loss {:.4}",
            round.index + 1,
            record.step + 1,
            record.loss
        ));
    })
}

/// How `client` trains in `round`: steps, batch, learning rate, seeds and faults.
pub fn local_settings(plan: &RunPlan, round: &Round, client: u32, n_units: usize) -> LocalSettings {
    let config = &plan.config;
    let (federation, training) = (&config.federation, &config.training);
    let seed = plan.key.seed;
    let steps = schedule::local_steps(
        training.local_steps,
        n_units,
        training.batch_size * training.grad_accum,
        federation,
    );
    LocalSettings {
        steps,
        batch_size: training.batch_size,
        grad_accum: training.grad_accum,
        lr: round.lr,
        max_grad_norm: training.max_grad_norm,
        weight_decay: training.weight_decay,
        seed: derive(
            seed,
            Stream::LocalTraining,
            u64::from(round.index),
            u64::from(client),
        ),
        deadline: federation
            .deadline_seconds
            .map(|s| Instant::now() + Duration::from_secs_f64(s)),
        fail_before_step: failure_step(seed, round.index, client, federation.dropout, steps),
        shared_prefix: training.shared_prefix,
        example_privacy: config
            .privacy
            .example_level()
            .then(|| example_privacy(plan, n_units, u64::from(round.index) * u64::from(steps))),
    }
}

/// Example-level DP-SGD for a client with `n_units` units that went through `steps_before`
/// steps in earlier rounds: each step Poisson-samples its units at the rate that gives the
/// configured batch (`batch_size x grad_accum`) on average.
fn example_privacy(plan: &RunPlan, n_units: usize, steps_before: u64) -> ExamplePrivacy {
    let (privacy, training) = (&plan.config.privacy, &plan.config.training);
    let batch = (training.batch_size * training.grad_accum) as f64;
    let rate = (batch / n_units.max(1) as f64).min(1.0);
    ExamplePrivacy {
        clip_norm: privacy.clip_norm,
        noise_multiplier: privacy.noise_multiplier,
        rate,
        expected_batch: rate * n_units as f64,
        steps_before,
        delta: privacy.delta,
    }
}

/// The most ε any client's data spends in `rounds` rounds under example-level DP, counting each
/// client in every round, from each client's number of units.
pub fn example_epsilon_bound(
    plan: &RunPlan,
    client_units: impl Iterator<Item = usize>,
    rounds: u32,
) -> f64 {
    let config = &plan.config;
    let training = &config.training;
    client_units
        .map(|n| {
            let steps = schedule::local_steps(
                training.local_steps,
                n,
                training.batch_size * training.grad_accum,
                &config.federation,
            );
            let private = example_privacy(plan, n, 0);
            poisson_gaussian_epsilon(
                private.rate,
                private.noise_multiplier,
                u64::from(steps) * u64::from(rounds),
                private.delta,
            )
        })
        .fold(0.0, f64::max)
}

/// Files one client's outcome: its steps logged and averaged, its update kept, rejected or
/// its dropout recorded.
fn settle(
    experiment: &Experiment,
    state: &mut FederationState,
    training: &mut RoundTraining,
    (round, client): (&Round, u32),
    outcome: LocalOutcome,
    logs: &mut RunLogs,
) -> Result<()> {
    let (params, records, optimizer) = match outcome {
        LocalOutcome::Dropped(Dropout::Interrupted) => {
            return Err(Error::Interrupted {
                run_dir: experiment.plan.run_dir.clone(),
                round: round.index,
            })
        }
        LocalOutcome::Dropped(Dropout::Rejected { step, why }) => {
            training.rejected.push(ClientEvent {
                client,
                what: serde_json::json!({ "reason": format!("step {step}: {why}") }),
            });
            return Ok(());
        }
        LocalOutcome::Dropped(dropout) => {
            training.dropped.push(ClientEvent {
                client,
                what: serde_json::to_value(&dropout).unwrap_or_default(),
            });
            return Ok(());
        }
        LocalOutcome::Trained {
            params,
            steps,
            optimizer,
        } => (params, steps, optimizer),
    };
    let start = if experiment.links.compressed() {
        start_model(&state.global, &state.links).to_vec()
    } else {
        Vec::new()
    };
    let (params, bytes_up) = experiment.links.uplink(
        (experiment.plan.key.seed, round.index, client),
        (&state.global, &start, params),
        &mut state.links,
        &mut training.compression,
    )?;
    for record in &records {
        logs.steps.append(record)?;
        training.tokens += record.tokens;
    }
    let mean_loss = records.iter().map(|r| r.loss).sum::<f64>() / records.len().max(1) as f64;
    let rejected = rejection(
        &params,
        &state.global,
        mean_loss,
        &experiment.plan.config.training,
    );
    // A rejected client's steps stay in steps.jsonl but not in the round's means.
    if rejected.is_none() {
        for record in records.iter().filter(|r| r.has_loss()) {
            for (name, value) in &record.metrics {
                training.means.add_value(name, *value);
            }
            training.means.add_value("loss", record.loss);
        }
    }
    if let Some(reason) = rejected {
        training.rejected.push(ClientEvent {
            client,
            what: serde_json::json!({ "reason": reason }),
        });
        return Ok(());
    }
    if experiment.plan.config.training.keep_optimizer_state {
        state.optimizers.insert(client, optimizer);
    }
    training.bytes_up += bytes_up;
    training.trained.push(TrainedClient {
        client,
        params,
        local_steps: records.len() as u32,
        privacy: StepPrivacy::combine(records.iter().filter_map(|r| r.privacy.as_ref())),
    });
    Ok(())
}

/// Why a client update must not be aggregated, if it must not: a non-finite parameter, a
/// diverged loss (`training.max_loss`), or an update norm over `training.max_update_norm`.
pub(crate) fn rejection(
    params: &[f32],
    global: &[f32],
    mean_loss: f64,
    limits: &TrainingSection,
) -> Option<String> {
    if let Some(i) = params.iter().position(|p| !p.is_finite()) {
        return Some(format!("parameter {i} is {}", params[i]));
    }
    if !mean_loss.is_finite() || mean_loss > limits.max_loss {
        return Some(format!(
            "the local loss diverged (mean {mean_loss}, limit training.max_loss = {})",
            limits.max_loss
        ));
    }
    let norm = update_norm(params, global);
    if limits.max_update_norm > 0.0 && norm > limits.max_update_norm {
        return Some(format!(
            "the update's norm {norm:.6} exceeds training.max_update_norm = {}",
            limits.max_update_norm
        ));
    }
    None
}

/// `‖params − global‖₂`, accumulated in f64.
pub(crate) fn update_norm(params: &[f32], global: &[f32]) -> f64 {
    params
        .iter()
        .zip(global)
        .map(|(p, g)| (f64::from(*p) - f64::from(*g)).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Combines the surviving updates into the new global adapter with the aggregator plugin,
/// each client weighted by its number of training units.
///
/// # Errors
/// Plugin errors (an aggregator that fails or returns non-finite weights stops the run).
pub fn aggregate(
    experiment: &mut Experiment,
    state: &mut FederationState,
    round: &Round,
    training: &RoundTraining,
) -> Result<Aggregation> {
    let started = Instant::now();
    let config = &experiment.plan.config;
    if training.trained.is_empty() && !config.privacy.client_level() {
        return Ok(Aggregation {
            skipped: Some(
                "no client update survived this round (all dropped or rejected)".to_owned(),
            ),
            metrics: BTreeMap::new(),
            seconds: started.elapsed().as_secs_f64(),
            privacy: None,
        });
    }
    let privatized = config
        .privacy
        .client_level()
        .then(|| {
            let params: Vec<&[f32]> = training
                .trained
                .iter()
                .map(|t| t.params.as_slice())
                .collect();
            let noise = round_noise(&experiment.plan, round.index);
            privatize(
                &config.privacy,
                noise,
                state.clip_norm,
                &state.global,
                &params,
            )
        })
        .transpose()?;
    let updates: Vec<ClientUpdate<'_>> = match &privatized {
        // One update, the noised mean: weighting by examples would break the sensitivity bound.
        Some(noised) => vec![noised_update(&noised.params, &training.trained, round.lr)],
        None => training
            .trained
            .iter()
            .map(|t| ClientUpdate {
                client: t.client,
                params: t.params.as_slice().into(),
                n_examples: experiment.clients[t.client as usize].units.len() as u64,
                local_steps: t.local_steps,
                learning_rate: round.lr as f32,
            })
            .collect(),
    };
    let output = experiment.aggregator.aggregate(&AggregationInput {
        round: round.index,
        n_clients: experiment.n_clients(),
        global: state.global.as_slice().into(),
        updates: updates.as_slice().into(),
    })?;
    state.global = output.global.into_vec();
    if let Some(noised) = &privatized {
        state.clip_norm = noised.next_clip;
    }
    let example = || {
        example_privacy_record(
            training.trained.iter().filter_map(|t| t.privacy.as_ref()),
            config.privacy.delta,
        )
    };
    Ok(Aggregation {
        skipped: None,
        metrics: metric_map(&output.metrics),
        seconds: started.elapsed().as_secs_f64(),
        privacy: privatized.map(|p| p.record).or_else(example),
    })
}

/// The round's privacy record under example-level DP, from the steps of the clients it
/// aggregated: their examples clipped, mean gradient norm, and the largest ε any of them spent.
pub(crate) fn example_privacy_record<'a>(
    steps: impl Iterator<Item = &'a StepPrivacy>,
    delta: f64,
) -> Option<PrivacyRecord> {
    StepPrivacy::combine(steps).map(|total| PrivacyRecord {
        clipped: total.clipped,
        mean_update_norm: total.mean_grad_norm,
        clip_norm: None,
        within_clip: None,
        epsilon: total.epsilon,
        delta,
    })
}

/// Where round `index`'s privacy noise comes from: a seed derived from the run's seed and the
/// round, how clients were drawn, and the fixed denominator qN.
pub(crate) fn round_noise(plan: &RunPlan, index: u32) -> RoundNoise {
    let federation = &plan.config.federation;
    RoundNoise {
        seed: derive(plan.key.seed, Stream::PrivacyNoise, u64::from(index), 0),
        round: index,
        draw: federation.client_draw(),
        expected_clients: federation.sampling_rate() * f64::from(federation.clients),
    }
}

/// The aggregator's one input under client-level privacy: `global + noised mean update`, as
/// the first trained client (client 0 when none trained), with their mean number of steps.
pub(crate) fn noised_update<'a>(
    noised: &'a [f32],
    trained: &[TrainedClient],
    lr: f64,
) -> ClientUpdate<'a> {
    let steps: u32 = trained.iter().map(|t| t.local_steps).sum();
    ClientUpdate {
        client: trained.first().map_or(0, |t| t.client),
        params: noised.into(),
        n_examples: 1,
        local_steps: steps / trained.len().max(1) as u32,
        learning_rate: lr as f32,
    }
}

/// The round's row of `metrics/rounds.jsonl`, appended to the log.
///
/// # Errors
/// I/O errors naming the file.
pub fn record(
    round: &Round,
    training: RoundTraining,
    aggregation: Aggregation,
    started: Instant,
    logs: &mut RunLogs,
) -> Result<RoundRecord> {
    let record = RoundRecord {
        round: round.index,
        lr: round.lr,
        sampled: round.sampled.clone(),
        trained: training.trained.iter().map(|t| t.client).collect(),
        dropped: training.dropped,
        rejected: training.rejected,
        skipped: aggregation.skipped,
        bytes_down: training.bytes_down,
        bytes_up: training.bytes_up,
        tokens: training.tokens,
        seconds: started.elapsed().as_secs_f64(),
        reference_seconds: training.reference_seconds,
        train_seconds: training.train_seconds,
        aggregation_seconds: aggregation.seconds,
        train: training.means.means(),
        aggregator: aggregation.metrics,
        privacy: aggregation.privacy,
        compression: training.compression,
    };
    logs.rounds.append(&record)?;
    Ok(record)
}

/// Writes the round's checkpoint (global adapter raw and as PEFT files, aggregator and
/// optimizer states, metrics lengths), keeps the newest `checkpoint.keep` and advances the
/// manifest.
///
/// # Errors
/// I/O errors naming the file; plugin errors saving the aggregator's state.
pub fn checkpoint(
    experiment: &mut Experiment,
    state: &mut FederationState,
    round: &Round,
    logs: &mut RunLogs,
    manifest: &mut fedpref_rundir::Manifest,
) -> Result<()> {
    let checkpoint_state = CheckpointState {
        round: round.index,
        steps_len: logs.steps.sync()?,
        rounds_len: logs.rounds.sync()?,
        n_params: experiment.n_params(),
        clip_norm: experiment
            .plan
            .config
            .privacy
            .adaptive_clipping()
            .then_some(state.clip_norm),
        broadcasts: state.links.broadcasts.clone(),
        synced: state.links.synced.clone(),
    };
    let aggregator_state = experiment.aggregator.save_state()?;
    let base_model = experiment.plan.config.model.path.display().to_string();
    let decoder = &experiment.model.decoder;
    experiment
        .dir
        .write_checkpoint(round.index, |tmp| -> Result<()> {
            checkpoint::write(
                tmp,
                &checkpoint_state,
                &state.global,
                &aggregator_state,
                &state.optimizers,
                (&state.links.residuals, state.links.public.as_deref()),
            )?;
            let adapter = decoder
                .adapter()
                .ok_or_else(|| Error::Usage("the adapter is not attached".to_owned()))?;
            adapter.unflatten(&state.global)?;
            Ok(fedpref_model::save_adapter(adapter, tmp, &base_model)?)
        })?;
    let keep = experiment.plan.config.checkpoint.keep.max(1);
    experiment
        .dir
        .prune_checkpoints((round.index + 1).saturating_sub(keep))?;
    state.next_round = round.index + 1;
    state.metrics_lengths = (checkpoint_state.steps_len, checkpoint_state.rounds_len);
    manifest.rounds_completed = round.index + 1;
    manifest.privacy = privacy_summary(experiment, round.index + 1);
    manifest.write(&experiment.dir)?;
    Ok(())
}

/// Scores the global adapter on the benchmarks when `eval.every` (or the last round) asks.
///
/// # Errors
/// Model and I/O errors (a scorer's own failure is recorded, not returned).
pub fn evaluate(
    experiment: &mut Experiment,
    state: &FederationState,
    round: &Round,
    ctx: &SweepContext<'_>,
) -> Result<()> {
    let config = &experiment.plan.config;
    let federation = &config.federation;
    if !config
        .eval
        .due(round.index, federation.rounds, federation.eval_every)
    {
        return Ok(());
    }
    // The decoder holds whatever the last client trained: score the global adapter.
    experiment
        .model
        .decoder
        .adapter()
        .ok_or_else(|| Error::Usage("the adapter is not attached".to_owned()))?
        .unflatten(&state.global)?;
    experiment.evaluator.evaluate(
        &experiment.model,
        &state.global,
        Target::Round(round.index),
        &ctx.progress,
        &experiment.name,
    )?;
    Ok(())
}

/// The line a finished round prints.
pub fn round_line(name: &str, record: &RoundRecord) -> String {
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

//! A run prepared for its rounds ([`Experiment::prepare`]): the data loaded and checked, the model
//! loaded with a fresh adapter, the data partitioned into each client's training units, the loss
//! and aggregator plugins created, and the evaluator ready. Whatever can be wrong with the data,
//! the benchmarks or the config fails here, before the first round.

use fedpref_model::{
    describe, load_model_as, model_identity, select_device, Adapter, LoadedModel, LoraConfig,
    MemoryOptions,
};
use fedpref_plugin_api::{DataNeeds, ExampleMeta, Metric, PartitionInput};
use fedpref_rundir::{DataSummary, PartitionSummary, RunDir};

use super::{
    links::Links,
    manifest::{data_summary, partition_summary},
    plan::RunPlan,
    round::example_epsilon_bound,
    sampling::{derive, Stream},
    SweepContext,
};
use crate::{
    data::{
        example_metas_with_lengths, load_splits, require_pairs, tokenize, ClientData, Splits,
        TokenizedDataset,
    },
    eval::Evaluator,
    plugin_host::{AggregatorHandle, ComponentParams, LossHandle},
    train::{client_units, ReferenceCache, Unit},
    Error, Result,
};

/// One client's training data.
#[derive(Debug, Clone)]
pub struct ClientShard {
    /// Its training units (pairs, or single answers with their KL sequences).
    pub units: Vec<Unit>,
    /// Whether the units' reference log-probs are filled in (on the client's first sampling).
    pub has_reference: bool,
}

/// Everything a run needs before its first round.
pub struct Experiment {
    /// The resolved run.
    pub plan: RunPlan,
    /// `method-aggregator-sSEED`, for messages.
    pub name: String,
    /// The run directory.
    pub dir: RunDir,
    /// The base model with the adapter attached.
    pub model: LoadedModel,
    /// The token id batches are padded with.
    pub pad_id: u32,
    /// Each client's data.
    pub clients: Vec<ClientShard>,
    /// The loss plugin.
    pub loss: LossHandle,
    /// The aggregator plugin (its state is restored from a checkpoint when resuming).
    pub aggregator: AggregatorHandle,
    /// The codecs of the uplink and downlink.
    pub links: Links,
    /// The benchmarks, ready to score.
    pub evaluator: Evaluator,
    /// The adapter's initial flat parameters (the global adapter before round 0).
    pub initial: Vec<f32>,
    /// Data counts for the manifest.
    pub data_summary: DataSummary,
    /// The client split for the manifest.
    pub partition_summary: PartitionSummary,
}

impl Experiment {
    /// Loads and checks data, model, partition, plugins and benchmarks for `plan`.
    ///
    /// # Errors
    /// Data, model, plugin and I/O errors; [`Error::Run`] when a client gets no data.
    pub fn prepare(plan: &RunPlan, ctx: &mut SweepContext<'_>) -> Result<Self> {
        let name = plan.key.dir_name();
        let config = &plan.config;
        let (splits, mut model, tokenized) = load_data(plan, ctx)?;
        let (clients, partition_summary) = partition(plan, ctx, &splits, &tokenized)?;
        check_example_budget(plan, &clients)?;
        let pad_id = model.tokenizer.eos().map_or(0, |(_, id)| id);
        // Scorers and benchmark files are checked here, so a bad [eval] fails before training.
        let evaluator = Evaluator::new(
            &config.eval,
            ctx.host,
            &plan.run_dir,
            &model,
            splits.eval.as_ref(),
            &config.data,
            None,
        )?;
        open_reference_cache(plan, ctx)?;
        let initial = attach_adapter(plan, &mut model)?;
        Ok(Self {
            name,
            dir: RunDir::new(&plan.run_dir),
            pad_id,
            loss: ctx.host.loss(&plan.key.method, &plan.loss_params())?,
            aggregator: ctx
                .host
                .aggregator(&plan.key.aggregator, &plan.aggregator_params())?,
            links: Links::new(plan, ctx.host)?,
            data_summary: data_summary(&splits, &tokenized),
            partition_summary,
            clients,
            evaluator,
            initial,
            model,
            plan: plan.clone(),
        })
    }

    /// Number of clients.
    pub fn n_clients(&self) -> u32 {
        self.clients.len() as u32
    }

    /// Number of trainable (adapter) parameters.
    pub fn n_params(&self) -> usize {
        self.initial.len()
    }
}

/// Under example-level DP with `privacy.epsilon_budget`, refuses a run in which some client's
/// data would spend more than the budget (each client counted in every round).
fn check_example_budget(plan: &RunPlan, clients: &[ClientShard]) -> Result<()> {
    let privacy = &plan.config.privacy;
    if !privacy.example_level() || privacy.epsilon_budget == 0.0 {
        return Ok(());
    }
    let rounds = plan.config.federation.rounds;
    let spent = example_epsilon_bound(plan, clients.iter().map(|c| c.units.len()), rounds);
    if spent <= privacy.epsilon_budget {
        return Ok(());
    }
    Err(Error::Run {
        run_dir: plan.run_dir.clone(),
        message: format!(
            "privacy.epsilon_budget = {}: with example-level DP a client's data spends up to \
             epsilon = {spent:.3} at delta = {} over {} rounds; raise privacy.noise_multiplier, \
             or lower federation.rounds or training.local_steps",
            privacy.epsilon_budget, privacy.delta, plan.config.federation.rounds
        ),
    })
}

/// Each client's training units for `plan`, dealt as [`Experiment::prepare`] deals them, for
/// shard files ([`super::worker::write_shard`]) of clients that train elsewhere.
///
/// # Errors
/// Data, model and plugin errors; [`Error::Run`] when a client gets no data.
pub fn deal_units(plan: &RunPlan, ctx: &SweepContext<'_>) -> Result<Vec<Vec<Unit>>> {
    let (splits, _, tokenized) = load_data(plan, ctx)?;
    let (clients, _) = partition(plan, ctx, &splits, &tokenized)?;
    Ok(clients.into_iter().map(|c| c.units).collect())
}

/// The run's data split and checked, the model loaded, and the training split tokenized.
fn load_data(
    plan: &RunPlan,
    ctx: &SweepContext<'_>,
) -> Result<(Splits, LoadedModel, TokenizedDataset)> {
    let config = &plan.config;
    let splits = load_splits(&config.data, derive(plan.key.seed, Stream::EvalSplit, 0, 0))?;
    if plan.loss_spec.data == DataNeeds::Paired {
        require_pairs(&splits.train, &plan.key.method)?;
    }
    let model = load_model(plan, ctx)?;
    let template = model.chat_template()?;
    let tokenized = tokenize(&splits.train, &model.tokenizer, &template, &config.data)?;
    Ok((splits, model, tokenized))
}

/// The base model on the configured device and precision.
fn load_model(plan: &RunPlan, ctx: &SweepContext<'_>) -> Result<LoadedModel> {
    let model = &plan.config.model;
    let device = select_device(&model.device)?;
    let dtype = model.dtype.dtype();
    ctx.progress.note(&format!(
        "{}: loading {} ({dtype:?} on {})",
        plan.key.dir_name(),
        model.path.display(),
        describe(&device)
    ));
    Ok(load_model_as(&model.path, dtype, &device)?)
}

/// Deals the training examples out to clients with the run's partitioner and builds each
/// client's units.
fn partition(
    plan: &RunPlan,
    ctx: &SweepContext<'_>,
    splits: &Splits,
    tokenized: &TokenizedDataset,
) -> Result<(Vec<ClientShard>, PartitionSummary)> {
    let config = &plan.config;
    let lengths: Vec<u32> = tokenized
        .examples
        .iter()
        .map(|e| e.as_ref().map_or(0, |e| e.max_len() as u32))
        .collect();
    let metas = example_metas_with_lengths(&splits.train, &lengths, config.data.n_buckets);
    let (clients, metrics) = deal(plan, ctx, &metas)?;
    let units: Vec<Vec<Unit>> = (0..clients.n_clients())
        .map(|c| client_units(clients.client(c), tokenized, plan.loss_spec))
        .collect();
    if let Some(empty) = units.iter().position(Vec::is_empty) {
        return Err(Error::Run {
            run_dir: plan.run_dir.clone(),
            message: format!("client {empty} has no training data after partitioning; use fewer clients or more data"),
        });
    }
    let summary = partition_summary(&plan.partitioner, &clients, &units, &metrics);
    let needs_reference = plan.loss_spec.needs_reference || plan.loss_spec.needs_kl_batch;
    let shards = units
        .into_iter()
        .map(|units| ClientShard {
            units,
            has_reference: !needs_reference,
        })
        .collect();
    Ok((shards, summary))
}

/// The run's split of `metas`: the planned partitioner's; for redistributed data (KTOR),
/// `redistribute` over the configured partitioner's split, told each client's number of
/// answers there so that it can keep them.
fn deal(
    plan: &RunPlan,
    ctx: &SweepContext<'_>,
    metas: &[ExampleMeta],
) -> Result<(ClientData, Vec<Metric>)> {
    let seed = plan.key.seed;
    let n_clients = plan.config.federation.clients;
    let split = |name: &str, params: &ComponentParams, n_clients, stream_round, sizes: &[u64]| {
        let partitioner = ctx
            .host
            .partitioner(name, &serde_json::to_value(params).unwrap_or_default())?;
        let output = partitioner.partition(&PartitionInput {
            examples: metas.into(),
            n_clients,
            seed: derive(seed, Stream::Partition, stream_round, 0),
            client_sizes: sizes.into(),
        })?;
        let clients = ClientData::from_partition(name, &output, metas)?;
        Ok::<_, Error>((clients, output.metrics.into_vec()))
    };
    let (name, params) = (&plan.partitioner, &plan.partitioner_params);
    let Some((base_name, base_params)) = &plan.base_partitioner else {
        return split(name, params, n_clients, 0, &[]);
    };
    // The base split is the one the paired and unpaired methods get (same seed).
    let (base, _) = split(base_name, base_params, n_clients, 0, &[])?;
    let sizes: Vec<u64> = (0..base.n_clients())
        .map(|c| base.counts(c).answers() as u64)
        .collect();
    split(name, params, sizes.len() as u32, 1, &sizes)
}

/// Opens the sweep's reference log-prob cache on the first run that needs one.
fn open_reference_cache(plan: &RunPlan, ctx: &mut SweepContext<'_>) -> Result<()> {
    let needs_reference = plan.loss_spec.needs_reference || plan.loss_spec.needs_kl_batch;
    if !needs_reference || ctx.reference_cache.is_some() {
        return Ok(());
    }
    let sweep_dir = plan.run_dir.parent().unwrap_or(&plan.run_dir);
    // bf16 reference log-probs differ from f32 ones: the dtype is part of the key.
    let model_key = format!(
        "{}:{:?}",
        model_identity(&plan.config.model.path)?,
        plan.config.model.dtype.dtype()
    );
    ctx.reference_cache = Some(ReferenceCache::open(
        &sweep_dir.join("cache/reference-logprobs.bin"),
        &model_key,
    )?);
    Ok(())
}

/// Attaches a freshly initialized adapter (seeded), sets the training pass's memory options,
/// and returns the adapter's flat parameters.
///
/// # Errors
/// A LoRA config the model does not fit; tensor errors.
pub(crate) fn attach_adapter(plan: &RunPlan, model: &mut LoadedModel) -> Result<Vec<f32>> {
    let lora = &plan.config.lora;
    let targets: Vec<&str> = lora.targets.iter().map(String::as_str).collect();
    let lora = LoraConfig::new(lora.rank, lora.alpha, lora.dropout, &targets)?;
    let adapter = Adapter::new(
        &lora,
        model.decoder.config(),
        derive(plan.key.seed, Stream::AdapterInit, 0, 0),
        candle_core::DType::F32,
        model.decoder.device(),
    )?;
    let initial = adapter.flatten()?;
    model.decoder.attach_adapter(adapter)?;
    model.decoder.set_memory_options(MemoryOptions {
        head_chunk: plan.config.training.head_chunk,
        checkpoint_layers: plan.config.training.activation_checkpointing,
    });
    Ok(initial)
}

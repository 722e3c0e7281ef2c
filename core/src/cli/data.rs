//! `fedpref data inspect <file>`: what a data file holds (layout, rows, pairs versus single
//! answers, label balance, length percentiles, invalid rows by reason) and, with a partitioner,
//! how it would be dealt out to clients. Exits non-zero when a run could not use the file: no
//! valid record, or invalid ones under `data.on_invalid = "error"` (the default).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Args, Subcommand};
use fedpref::{
    data::tokenize,
    data::{
        example_metas, inspect, ClientData, DataConfig, Format, OnInvalid, Percentiles,
        TokenLengths,
    },
    PluginHost,
};
use fedpref_model::load_model;
use fedpref_plugin_api::PartitionInput;

use super::UsageError;

/// Data subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Report on a data file, and preview a partition of it.
    Inspect(InspectArgs),
    /// Deal a run's training data to its clients as the simulated run does, one shard file
    /// per client (for `fedpref client train` on each client's machine).
    Shards(super::deploy::ShardsArgs),
}

/// Arguments of `fedpref data inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The data file (JSON array or JSON Lines).
    file: PathBuf,
    /// An experiment config: its `[data]` settings are used (not its path), and its
    /// `[partition]`, `[federation] clients` and first seed give the partition preview.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The record layout, overriding the config (auto, trl-paired, trl-unpaired,
    /// sharegpt-paired, sharegpt-kto).
    #[arg(long, value_name = "LAYOUT")]
    format: Option<String>,
    /// Preview this partitioner (e.g. iid, dirichlet, natural, redistribute, quantity-skew).
    #[arg(long, value_name = "NAME")]
    partitioner: Option<String>,
    /// The partitioner's parameters as a JSON object, e.g. '{"alpha": 0.1}'.
    #[arg(long, value_name = "JSON")]
    params: Option<String>,
    /// Number of clients of the preview (default: the config's, else 10).
    #[arg(long, value_name = "N")]
    clients: Option<u32>,
    /// Seed of the preview (default: the config's first seed, else 0).
    #[arg(long, value_name = "SEED")]
    seed: Option<u64>,
    /// Also report lengths in tokens under this model's tokenizer and chat template (a GGUF
    /// file or Hugging Face directory; default: the config's model, when --config is given).
    #[arg(long, value_name = "MODEL")]
    model: Option<PathBuf>,
}

/// The partition preview settings once the config and the flags are merged.
struct Preview {
    name: String,
    params: serde_json::Value,
    clients: u32,
    seed: u64,
}

/// Runs a data subcommand; `host` loads the plugins when a preview needs a partitioner, and
/// `data shards` loads them from `plugin_dirs` and the config's folders.
pub fn run(
    command: &DataCommand,
    host: impl FnOnce() -> anyhow::Result<PluginHost>,
    plugin_dirs: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let args = match command {
        DataCommand::Inspect(args) => args,
        DataCommand::Shards(args) => return super::deploy::shards(args, plugin_dirs),
    };
    let (mut data, preview) = settings(args)?;
    if let Some(format) = &args.format {
        data.format = serde_json::from_value::<Format>(serde_json::Value::String(format.clone())).map_err(|_| {
            UsageError(format!(
                "--format {format:?} is not one of auto, trl-paired, trl-unpaired, sharegpt-paired, sharegpt-kto"
            ))
        })?;
    }
    let (mut report, dataset) = inspect(&args.file, &data)?;
    let model = args.model.clone().or_else(|| {
        let path = args.config.as_ref()?;
        fedpref::config::load(path, &[]).ok().map(|c| c.model.path)
    });
    if let (Some(model), Some(dataset)) = (&model, &dataset) {
        report.tokens = Some(token_lengths(model, dataset, &data)?);
    }
    let Some(dataset) = dataset else {
        // Nothing to partition: the report says why every record was rejected.
        print!("{report}");
        eprintln!(
            "error: {}: no usable example; the report above says why each record was rejected",
            args.file.display()
        );
        return Ok(ExitCode::FAILURE);
    };
    let report = match preview {
        None => report,
        Some(preview) => {
            let host = host()?;
            let partitioner = host.partitioner(&preview.name, &preview.params)?;
            let metas = example_metas(&dataset, data.n_buckets);
            let input = PartitionInput {
                examples: metas.as_slice().into(),
                n_clients: preview.clients,
                seed: preview.seed,
                client_sizes: Default::default(),
            };
            let output = partitioner.partition(&input)?;
            let clients = ClientData::from_partition(&preview.name, &output, &metas)?;
            let metrics: Vec<(String, f64)> = output
                .metrics
                .iter()
                .map(|m| (m.name.to_string(), m.value))
                .collect();
            let title = format!("{}, seed {}", preview.name, preview.seed);
            report.with_clients(&title, &clients, &metrics)
        }
    };
    print!("{report}");
    let invalid = report.invalid.total();
    if invalid > 0 && data.on_invalid == OnInvalid::Error {
        eprintln!(
            "error: {}: {invalid} invalid record(s), listed above; a run stops on the first (data.on_invalid = \"error\"): fix them, or set data.on_invalid = \"skip\" to leave them out",
            args.file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Tokenizes `dataset` as training does and summarizes the lengths.
fn token_lengths(
    model: &std::path::Path,
    dataset: &fedpref::data::Dataset,
    data: &DataConfig,
) -> anyhow::Result<TokenLengths> {
    let loaded = load_model(model, &candle_core::Device::Cpu)?;
    let template = loaded.chat_template()?;
    // Measure before fitting: limits far above any example keep every example whole.
    let unlimited = DataConfig {
        max_length: usize::MAX / 4,
        max_prompt_length: usize::MAX / 8,
        ..data.clone()
    };
    let whole = tokenize(dataset, &loaded.tokenizer, &template, &unlimited)?;
    let fitted = tokenize(dataset, &loaded.tokenizer, &template, data)?;
    let examples: Vec<_> = whole.examples.iter().flatten().collect();
    let lengths = [
        (
            "prompt",
            examples.iter().map(|e| e.prompt.len()).collect::<Vec<_>>(),
        ),
        (
            "answer",
            examples
                .iter()
                .flat_map(|e| e.answers.iter().map(Vec::len))
                .collect(),
        ),
        ("total", examples.iter().map(|e| e.max_len()).collect()),
    ]
    .into_iter()
    .filter_map(|(name, values)| Percentiles::of(values).map(|p| (name, p)))
    .collect();
    Ok(TokenLengths {
        model: model.display().to_string(),
        lengths,
        max_length: data.max_length,
        max_prompt_length: data.max_prompt_length,
        fit: fitted.lengths,
    })
}

/// The data settings and the preview (if any) from `--config` and the flags.
fn settings(args: &InspectArgs) -> anyhow::Result<(DataConfig, Option<Preview>)> {
    let params = match &args.params {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .filter(serde_json::Value::is_object)
                .ok_or_else(|| UsageError(format!("--params {text:?} is not a JSON object")))?,
        ),
    };
    let Some(path) = &args.config else {
        let preview = args.partitioner.clone().map(|name| Preview {
            name,
            params: params.unwrap_or_else(|| serde_json::json!({})),
            clients: args.clients.unwrap_or(10),
            seed: args.seed.unwrap_or(0),
        });
        if preview.is_none()
            && (args.params.is_some() || args.clients.is_some() || args.seed.is_some())
        {
            return Err(UsageError(
                "--params, --clients and --seed need --partitioner or --config".to_owned(),
            )
            .into());
        }
        return Ok((DataConfig::default(), preview));
    };
    let config =
        fedpref::config::load(path, &[]).with_context(|| format!("reading {}", path.display()))?;
    let preview = Preview {
        name: args
            .partitioner
            .clone()
            .unwrap_or_else(|| config.partition.name.clone()),
        params: match params {
            Some(params) => params,
            None if args.partitioner.is_some() => serde_json::json!({}),
            None => serde_json::to_value(&config.partition.params)?,
        },
        clients: args.clients.unwrap_or(config.federation.clients),
        seed: args
            .seed
            .or_else(|| config.experiment.seeds.first().copied())
            .unwrap_or(0),
    };
    Ok((config.data, Some(preview)))
}

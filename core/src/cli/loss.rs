//! `fedpref loss <name> --input <json>`: evaluates a loss plugin on given log-prob arrays and
//! prints the loss, its gradients and metrics. A debugging tool for plugin authors.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use abi_stable::std_types::RSlice;
use clap::Args;
use fedpref::{Error, PluginHost};
use fedpref_plugin_api::{Label, LossBatch, LossOutput};
use serde::Deserialize;

use super::UsageError;

/// Arguments of `fedpref loss`.
#[derive(Debug, Args)]
pub struct LossArgs {
    /// The loss component, e.g. `dpo`.
    name: String,
    /// A JSON file (or `-` for standard input) with `logp_policy`, `logp_ref`, `n_tokens`,
    /// `labels` ("chosen"/"rejected"), `pair` (partner index or -1), and optionally
    /// `kl_logp_policy`, `kl_logp_ref`, `client_desirable`, `client_undesirable` (the client's
    /// label counts; default: the batch's).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// The loss's parameters as a JSON object, e.g. '{"beta": 0.1, "variant": "ipo"}'.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    params: String,
    /// Print JSON instead of a readable summary.
    #[arg(long)]
    json: bool,
}

/// The input file's layout; `n_tokens` defaults to 1 and `pair` to -1 (single answers).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LossInput {
    logp_policy: Vec<f32>,
    #[serde(default)]
    logp_ref: Vec<f32>,
    #[serde(default)]
    n_tokens: Option<Vec<u32>>,
    labels: Vec<InputLabel>,
    #[serde(default)]
    pair: Option<Vec<i64>>,
    #[serde(default)]
    kl_logp_policy: Vec<f32>,
    #[serde(default)]
    kl_logp_ref: Vec<f32>,
    /// The client's label counts; default: the batch's own, as if it were the client's data.
    #[serde(default)]
    client_desirable: Option<u64>,
    #[serde(default)]
    client_undesirable: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum InputLabel {
    Chosen,
    Rejected,
}

fn read_input(path: &Path) -> anyhow::Result<LossInput> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io(path, e))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?
    };
    serde_json::from_str(&text).map_err(|e| {
        Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
        .into()
    })
}

/// Runs `fedpref loss`.
pub fn run(args: &LossArgs, host: &PluginHost) -> anyhow::Result<ExitCode> {
    let params: serde_json::Value = serde_json::from_str(&args.params)
        .map_err(|e| UsageError(format!("--params is not valid JSON: {e}")))?;
    if !params.is_object() {
        return Err(UsageError(format!("--params must be a JSON object, got {params}")).into());
    }
    let loss = host.loss(&args.name, &params)?;
    let input = read_input(&args.input)?;
    let n = input.logp_policy.len();
    let n_tokens = input.n_tokens.unwrap_or_else(|| vec![1; n]);
    let pair = input.pair.unwrap_or_else(|| vec![-1; n]);
    let labels: Vec<Label> = input
        .labels
        .iter()
        .map(|l| match l {
            InputLabel::Chosen => Label::Chosen,
            InputLabel::Rejected => Label::Rejected,
        })
        .collect();
    let chosen = labels.iter().filter(|&&l| l == Label::Chosen).count() as u64;
    let batch = LossBatch {
        logp_policy: RSlice::from(input.logp_policy.as_slice()),
        logp_ref: RSlice::from(input.logp_ref.as_slice()),
        n_tokens: RSlice::from(n_tokens.as_slice()),
        labels: RSlice::from(labels.as_slice()),
        pair: RSlice::from(pair.as_slice()),
        kl_logp_policy: RSlice::from(input.kl_logp_policy.as_slice()),
        kl_logp_ref: RSlice::from(input.kl_logp_ref.as_slice()),
        client_desirable: input.client_desirable.unwrap_or(chosen),
        client_undesirable: input
            .client_undesirable
            .unwrap_or(labels.len() as u64 - chosen),
    };
    let output = loss.evaluate(&batch)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&output_json(&output))?);
    } else {
        print!("{}", output_text(&args.name, &output));
    }
    Ok(ExitCode::SUCCESS)
}

fn output_json(output: &LossOutput) -> serde_json::Value {
    let metrics: serde_json::Map<String, serde_json::Value> = output
        .metrics
        .iter()
        .map(|m| {
            (
                m.name.to_string(),
                serde_json::json!(m.value.is_finite().then_some(m.value)),
            )
        })
        .collect();
    serde_json::json!({
        "loss": output.loss,
        "grad_logp_policy": output.grad_logp_policy.as_slice(),
        "grad_kl_logp_policy": output.grad_kl_logp_policy.as_slice(),
        "metrics": metrics,
    })
}

fn output_text(name: &str, output: &LossOutput) -> String {
    let mut out = format!("loss {name}: {:.8}\n", output.loss);
    let join = |values: &[f32]| {
        values
            .iter()
            .map(|g| format!("{g:.8}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "d loss / d logp_policy: [{}]\n",
        join(&output.grad_logp_policy)
    ));
    if !output.grad_kl_logp_policy.is_empty() {
        out.push_str(&format!(
            "d loss / d kl_logp_policy: [{}]\n",
            join(&output.grad_kl_logp_policy)
        ));
    }
    for metric in output.metrics.iter() {
        out.push_str(&format!("{}: {}\n", metric.name, metric.value));
    }
    out
}

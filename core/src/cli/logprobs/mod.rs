//! `fedpref logprobs --model M [--adapter A] (--text T | --prompt P --answer R | --ids 1,2,3)`:
//! prints `{"token_ids": [...], "logprobs": [...]}` with `logprobs[i]` the log-prob of
//! `token_ids[i + 1]`. The work is [`compute::compute_logprobs`].

mod compute;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgGroup, Args};
use compute::{compute_logprobs, LogprobsInput};

use super::{DeviceArgs, UsageError};

/// Arguments of `fedpref logprobs`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["text", "prompt", "ids"])))]
pub struct LogprobsArgs {
    /// A `.gguf` file or a Hugging Face model directory.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// A PEFT LoRA adapter directory to apply.
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// Score this text as a document.
    #[arg(long)]
    text: Option<String>,
    /// A user prompt, rendered with the model's chat template (needs --answer).
    #[arg(long, requires = "answer")]
    prompt: Option<String>,
    /// The assistant's answer to --prompt.
    #[arg(long, requires = "prompt")]
    answer: Option<String>,
    /// Comma-separated token ids, used as given (no template, no BOS).
    #[arg(long, value_name = "IDS")]
    ids: Option<String>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Runs `fedpref logprobs`.
pub fn run(args: &LogprobsArgs) -> anyhow::Result<ExitCode> {
    fedpref_model::init_cpu();
    let input = match (&args.text, &args.prompt, &args.answer, &args.ids) {
        (Some(t), ..) => LogprobsInput::Text(t.clone()),
        (_, Some(p), Some(a), _) => LogprobsInput::PromptAnswer {
            prompt: p.clone(),
            answer: a.clone(),
        },
        (.., Some(ids)) => LogprobsInput::Ids(
            ids.split(',')
                .map(|s| s.trim().parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    UsageError(format!(
                        "--ids must be comma-separated token ids ({e}), got {ids:?}"
                    ))
                })?,
        ),
        _ => return Err(UsageError("give --text, --prompt with --answer, or --ids".into()).into()),
    };
    let device = args.device.device_or("cpu")?;
    let dtype = args.device.precision().dtype();
    let out = compute_logprobs(&args.model, args.adapter.as_deref(), &input, dtype, &device)
        .with_context(|| format!("scoring with {}", args.model.display()))?;
    println!("{}", serde_json::to_string(&out)?);
    Ok(ExitCode::SUCCESS)
}

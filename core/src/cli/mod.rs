//! Subcommands of the `fedpref` binary: argument types (clap) and their dispatch.

mod bench;
mod data;
mod deploy;
mod eval;
mod judge;
mod logprobs;
mod loss;
mod plugins;
#[cfg(feature = "report")]
mod report;
mod run;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use fedpref::{config::Precision, Error, PluginHost};

/// Federated preference fine-tuning of language models.
#[derive(Debug, Parser)]
#[command(name = "fedpref", version, about, propagate_version = true)]
pub struct Cli {
    /// Also load plugins from this directory (repeatable); the executable's directory and
    /// FEDPREF_PLUGIN_PATH are always searched.
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    plugin_dirs: Vec<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List and check plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Inspect preference data files.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Evaluate a loss plugin on log-prob arrays given as JSON (for plugin authors).
    Loss(loss::LossArgs),
    /// Print per-token log-probs of a text, prompt/answer or id list under a model (JSON).
    Logprobs(logprobs::LogprobsArgs),
    /// Run a federated experiment (a sweep of methods x aggregators x seeds) from a config.
    Run(run::RunArgs),
    /// Time a LoRA training step or generation on this machine (optionally against PyTorch).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Score a run's checkpoint (or the base model) on its [eval] benchmarks.
    Eval(eval::EvalArgs),
    /// One client's local training as a function of files, for clients that train where their
    /// data lives (the Flower app in deploy/flower/ runs it on each node).
    #[command(subcommand)]
    Client(deploy::ClientCommand),
    /// A deployed federation's server: round plans and aggregation as functions of files.
    #[command(subcommand)]
    Server(deploy::ServerCommand),
    /// Check the offline judge before its scores count as results.
    #[command(subcommand)]
    Judge(judge::JudgeCommand),
    /// Tables, figures and an HTML/Markdown report of a run or sweep directory.
    #[cfg(feature = "report")]
    Report(report::ReportArgs),
}

/// Parses the arguments and runs the subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    init_logging(
        if matches!(
            cli.command,
            Command::Run(_) | Command::Eval(_) | Command::Judge(_)
        ) {
            "info"
        } else {
            "warn"
        },
    );
    let host = || -> anyhow::Result<PluginHost> {
        let mut builder = PluginHost::builder().default_dirs();
        for dir in &cli.plugin_dirs {
            builder = builder.dir(dir);
        }
        Ok(builder.load()?)
    };
    match &cli.command {
        Command::Plugins(command) => plugins::run(command, host),
        Command::Data(command) => data::run(command, host, &cli.plugin_dirs),
        Command::Loss(args) => loss::run(args, &host()?),
        Command::Logprobs(args) => logprobs::run(args),
        Command::Run(args) => run::run(args, &cli.plugin_dirs),
        Command::Eval(args) => eval::run(args, &cli.plugin_dirs),
        Command::Judge(command) => judge::run(command, &host()?),
        Command::Client(command) => deploy::client(command, &cli.plugin_dirs),
        Command::Server(command) => deploy::server(command, &cli.plugin_dirs),
        Command::Bench(command) => bench::run(command, host),
        #[cfg(feature = "report")]
        Command::Report(args) => report::run(args),
    }
}

/// Logs go to stderr (results go to stdout); `RUST_LOG` overrides the `default` level.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// 2 for errors the user fixes in arguments, configuration or data, 1 for everything else.
pub fn exit_code_for(error: &anyhow::Error) -> ExitCode {
    match error.downcast_ref::<Error>() {
        Some(e) if e.is_usage() => ExitCode::from(2),
        // The shell's convention for a process stopped by SIGINT.
        Some(Error::Interrupted { .. }) => ExitCode::from(130),
        _ if error.downcast_ref::<UsageError>().is_some() => ExitCode::from(2),
        _ if matches!(
            error.downcast_ref::<fedpref_model::Error>(),
            Some(fedpref_model::Error::Usage(_))
        ) =>
        {
            ExitCode::from(2)
        }
        _ => ExitCode::from(1),
    }
}

/// `--device` and `--dtype`, shorthands for `--set model.device=...` / `model.dtype=...`.
#[derive(Debug, clap::Args)]
pub struct DeviceArgs {
    /// Where the model runs: `auto` (CUDA when built with it and a GPU is present), `cpu` or
    /// `cuda:N`; overrides `model.device` of a config.
    #[arg(long)]
    device: Option<String>,
    /// The frozen weights' precision (LoRA, optimizer and log-softmax stay f32); overrides
    /// `model.dtype` of a config.
    #[arg(long, value_enum)]
    dtype: Option<Precision>,
}

impl DeviceArgs {
    /// `overrides` with these flags appended (later overrides win).
    pub fn with_overrides(&self, overrides: &[String]) -> Vec<String> {
        let mut all = overrides.to_vec();
        if let Some(d) = &self.device {
            all.push(format!("model.device={d:?}"));
        }
        if let Some(d) = self.dtype {
            all.push(format!("model.dtype={:?}", d.as_str()));
        }
        all
    }

    /// The device named by `--device`, else `default`.
    ///
    /// # Errors
    /// An unknown device name, or CUDA in a build without it.
    pub fn device_or(&self, default: &str) -> fedpref_model::Result<candle_core::Device> {
        fedpref_model::select_device(self.device.as_deref().unwrap_or(default))
    }

    /// `--dtype`, else f32.
    pub fn precision(&self) -> Precision {
        self.dtype.unwrap_or_default()
    }
}

/// A mistake in the command's arguments found after parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

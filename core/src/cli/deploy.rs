//! `fedpref client ...`, `fedpref server ...` and `fedpref data shards`: one federated run taken
//! apart into commands that are pure functions of files, so clients train where their data
//! lives and a server (the Flower app in `deploy/flower/`, or a shell loop) aggregates what they
//! send. Each prints one JSON object on stdout; docs/deploy-flower.md has the file formats.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{atomic::AtomicBool, Arc},
};

use clap::{Args, Subcommand};
use fedpref::{
    config,
    federation::{
        experiment::deal_units,
        plan_one,
        server::{aggregate_round, plan_round, ServerState},
        worker::{
            read_shard, train_client_from_files, write_global, write_shard, ClientFiles,
            GlobalModel,
        },
        RunPlan, SweepContext,
    },
    progress::Progress,
    PluginHost,
};
use fedpref_plugin_api::ClientPlan;

use super::UsageError;

/// Which run of a config a command acts on.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment config (TOML); for `client` and later `server` commands, the run's
    /// config that `server init` wrote.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Override a config key, e.g. `--set federation.rounds=2` (repeatable; the value is TOML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// The run (`method-aggregator-sSEED`) when the config's sweep has several.
    #[arg(long, value_name = "NAME")]
    run: Option<String>,
}

/// Client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Check that a shard file can be trained on; prints its number of units.
    Check(CheckArgs),
    /// Train one client for one round from the global adapter; writes its update.
    Train(TrainArgs),
}

/// Arguments of `fedpref client check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The client's shard (`fedpref data shards` writes them).
    #[arg(long, value_name = "SHARD")]
    client_data: PathBuf,
}

/// Arguments of `fedpref client train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The client's index (its seeds, and its identity to the server).
    #[arg(long, value_name = "K")]
    client: u32,
    /// The global adapter and this client's plan (`server plan` writes them).
    #[arg(long, value_name = "FILE")]
    global: PathBuf,
    /// The client's shard.
    #[arg(long, value_name = "SHARD")]
    client_data: PathBuf,
    /// The round, 0-based.
    #[arg(long, value_name = "R")]
    round: u32,
    /// The client's state from the last round it trained (`<out>.state.safetensors`), when the
    /// config keeps optimizer state.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Where the client caches reference log-probs (default: `<shard>.reference-logprobs.bin`).
    #[arg(long, value_name = "FILE")]
    reference_cache: Option<PathBuf>,
    /// Output prefix: writes `<out>.json`, `<out>.safetensors` and, when the config keeps
    /// optimizer state, `<out>.state.safetensors`.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
}

/// Server subcommands.
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Narrow a config to one run and write its config and the state before round 0.
    Init(InitArgs),
    /// Sample the next round's clients and write the global adapter each is sent.
    Plan(PlanArgs),
    /// Check and aggregate the round's client updates into the next state.
    Aggregate(AggregateArgs),
}

/// Arguments of `fedpref server init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Where to write the run's config (every later command takes it as --config).
    #[arg(long, value_name = "FILE")]
    config_out: PathBuf,
    /// Where to write the server state before round 0.
    #[arg(long, value_name = "FILE")]
    state_out: PathBuf,
}

/// Arguments of `fedpref server plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The server state.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Folder for the sampled clients' `global-<client>.safetensors`.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
}

/// Arguments of `fedpref server aggregate`.
#[derive(Debug, Args)]
pub struct AggregateArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The server state of this round.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// The clients' update prefixes (`client train --out`); none skips the round.
    #[arg(long, value_name = "PREFIX", num_args = 0..)]
    updates: Vec<PathBuf>,
    /// Where to write the new global adapter.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Where to write the next state.
    #[arg(long, value_name = "FILE")]
    state_out: PathBuf,
}

/// Arguments of `fedpref data shards`.
#[derive(Debug, Args)]
pub struct ShardsArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Folder for `client-<k>.shard.jsonl`, one per client.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
}

/// Runs a client subcommand.
pub fn client(command: &ClientCommand, plugin_dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    match command {
        ClientCommand::Check(args) => {
            let units = read_shard(&args.client_data)?;
            print_json(&serde_json::json!({ "units": units.len() }))
        }
        ClientCommand::Train(args) => {
            let (plan, host) = load_plan(&args.run, plugin_dirs)?;
            if let Some(state) = args.state.as_ref().filter(|s| !s.is_file()) {
                return Err(UsageError(format!(
                    "--state {}: no such file (leave --state out before the client's first round)",
                    state.display()
                ))
                .into());
            }
            let files = ClientFiles {
                global: args.global.clone(),
                shard: args.client_data.clone(),
                state: args.state.clone(),
                reference_cache: args
                    .reference_cache
                    .clone()
                    .unwrap_or_else(|| suffixed(&args.client_data, ".reference-logprobs.bin")),
                out: args.out.clone(),
            };
            let info = train_client_from_files(&plan, &host, &files, (args.round, args.client))?;
            print_json(&info)
        }
    }
}

/// Runs a server subcommand.
pub fn server(command: &ServerCommand, plugin_dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Init(args) => {
            let (plan, host) = load_plan(&args.run, plugin_dirs)?;
            let text = toml::to_string_pretty(&plan.config)
                .map_err(|e| UsageError(format!("cannot serialize the config: {e}")))?;
            fedpref_rundir::write_atomic(&args.config_out, text.as_bytes())?;
            let state = ServerState::start(&plan, &host)?;
            state.write(&args.state_out)?;
            print_json(&serde_json::json!({
                "run": state.run,
                "rounds": plan.config.federation.rounds,
                "clients": plan.config.federation.clients,
                "n_params": state.global.len(),
            }))
        }
        ServerCommand::Plan(args) => {
            let (plan, host) = load_plan(&args.run, plugin_dirs)?;
            let state = ServerState::read(&args.state, &plan)?;
            print_json(&plan_round(&plan, &host, &state, &args.out_dir)?)
        }
        ServerCommand::Aggregate(args) => {
            let (plan, host) = load_plan(&args.run, plugin_dirs)?;
            let state = ServerState::read(&args.state, &plan)?;
            if state.done(&plan) {
                return Err(UsageError(format!(
                    "{}: every round of the run has been aggregated",
                    args.state.display()
                ))
                .into());
            }
            let (next, record) = aggregate_round(&plan, &host, &state, &args.updates)?;
            let model = GlobalModel::Params(next.global.clone());
            write_global(&args.out, &model, &ClientPlan::plain())?;
            next.write(&args.state_out)?;
            print_json(&record)
        }
    }
}

/// Runs `fedpref data shards`: deals the run's training data to its clients as the simulated
/// run does and writes each client's units.
pub fn shards(args: &ShardsArgs, plugin_dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (plan, host) = load_plan(&args.run, plugin_dirs)?;
    let ctx = SweepContext {
        host: &host,
        stop: Arc::new(AtomicBool::new(false)),
        reference_cache: None,
        progress: Progress::detect(),
        isolation: None,
    };
    let clients = deal_units(&plan, &ctx)?;
    std::fs::create_dir_all(&args.out_dir).map_err(|e| fedpref::Error::io(&args.out_dir, e))?;
    let mut shards = Vec::new();
    for (k, units) in clients.iter().enumerate() {
        let path = args.out_dir.join(format!("client-{k}.shard.jsonl"));
        write_shard(&path, units)?;
        shards.push(serde_json::json!({ "client": k, "path": path, "units": units.len() }));
    }
    print_json(&serde_json::json!({ "run": plan.key.dir_name(), "shards": shards }))
}

/// The config's one run (or the one `--run` names), with the plugins it needs loaded.
fn load_plan(args: &RunArgs, plugin_dirs: &[PathBuf]) -> anyhow::Result<(RunPlan, PluginHost)> {
    let config = config::load(&args.config, &args.overrides)?;
    let mut builder = PluginHost::builder().default_dirs();
    for dir in plugin_dirs.iter().chain(&config.plugins.dirs) {
        builder = builder.dir(dir);
    }
    let host = builder.load()?;
    let plan = plan_one(&config, &host, args.run.as_deref())?;
    Ok((plan, host))
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string(value)?);
    Ok(ExitCode::SUCCESS)
}

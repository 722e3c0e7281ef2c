//! `fedpref run <config>`: runs an experiment (every method x aggregator x seed of its sweep),
//! skipping complete runs and resuming interrupted ones; prints a summary table.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use clap::Args;
use fedpref::{
    config::{self, ExperimentConfig},
    federation::{
        isolation::{run_reported, Isolation},
        run_sweep, RunSummary,
    },
    progress::Progress,
    PluginHost,
};

use super::{DeviceArgs, UsageError};

/// Arguments of `fedpref run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment config (TOML), e.g. configs/quickstart.toml.
    #[arg(required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Override a config key, e.g. `--set federation.rounds=2` (repeatable; the value is TOML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue the run in this directory from its last complete round, with its saved config.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    resume: Option<PathBuf>,
    /// Check the config against the plugins and list the runs it would make, without running.
    #[arg(long)]
    dry_run: bool,
    /// Internal: run the config's one run in this process and write how it ended to this file
    /// (the sweep starts each run so, in a process of its own).
    #[arg(long, value_name = "FILE", hide = true, conflicts_with_all = ["resume", "dry_run"])]
    child_report: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Loads the config (or the saved one of `--resume`), then runs the sweep.
pub fn run(args: &RunArgs, plugin_dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let overrides = args.device.with_overrides(&args.overrides);
    let experiment = match (&args.config, &args.resume) {
        (_, Some(run_dir)) => resumed_config(run_dir, &overrides)?,
        (Some(path), None) => config::load(path, &overrides)?,
        (None, None) => {
            return Err(UsageError("give a config file or --resume <run-dir>".to_owned()).into())
        }
    };
    // A resumed run's saved config may come from elsewhere: its plugin folders are not
    // searched (code would load from wherever it points) unless --plugin-dir names them again.
    // A run's own process gets the folders its sweep used as --plugin-dir.
    let config_dirs: &[PathBuf] = if args.resume.is_some() || args.child_report.is_some() {
        &[]
    } else {
        &experiment.plugins.dirs
    };
    let mut builder = PluginHost::builder().default_dirs();
    for dir in plugin_dirs.iter().chain(config_dirs) {
        builder = builder.dir(dir);
    }
    let host = builder.load()?;
    if args.dry_run {
        let runs = fedpref::federation::plan_sweep(&experiment, &host)?;
        println!(
            "{} run(s) in {}:",
            runs.len(),
            experiment.sweep_dir().display()
        );
        for run in &runs {
            println!(
                "  {:<32} loss {} ({}), partition {}, {} rounds x {} of {} clients",
                run.key.dir_name(),
                run.key.method,
                run.loss_spec.data.as_str(),
                run.partitioner,
                run.config.federation.rounds,
                run.config.federation.clients_per_round,
                run.config.federation.clients,
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = stop.clone();
    // First Ctrl-C: finish the current step and stop cleanly; a second one exits at once.
    let _ = ctrlc::set_handler(move || {
        if handler_stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: finishing the current step, then stopping (Ctrl-C again to quit at once)"
        );
    });
    if let Some(report) = &args.child_report {
        let finished = run_reported(&experiment, &host, stop, Progress::detect(), report)?;
        return Ok(if finished {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    // Each run in a process of its own, so that a plugin aborting the process costs one run.
    let isolation = std::env::current_exe().ok().map(|exe| Isolation {
        exe,
        plugin_dirs: plugin_dirs.iter().chain(config_dirs).cloned().collect(),
    });
    let result = run_sweep(&experiment, &host, stop, Progress::detect(), isolation)?;
    print!("{}", summary_table(&result.runs));
    println!("sweep directory: {}", experiment.sweep_dir().display());
    if result.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "\n{} of {} runs failed (marked `failed` in their manifest; run the same command again to retry them):",
        result.failed.len(),
        result.failed.len() + result.runs.len()
    );
    for (dir, error) in &result.failed {
        eprintln!("  {}: {error:#}", dir.display());
    }
    // The first failure decides the exit code (2 for a usage or config error).
    match result.failed.into_iter().next() {
        Some((_, first)) => Err(first.into()),
        None => Ok(ExitCode::FAILURE),
    }
}

/// The saved config of a run directory, placed so the run lands in that same directory.
fn resumed_config(run_dir: &Path, overrides: &[String]) -> anyhow::Result<ExperimentConfig> {
    let mut experiment = config::load(&run_dir.join("config.toml"), overrides)?;
    let sweep_dir = run_dir
        .parent()
        .ok_or_else(|| UsageError(format!("{} has no parent directory", run_dir.display())))?;
    experiment.experiment.name = sweep_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            UsageError(format!(
                "{} is not a run directory of a sweep",
                run_dir.display()
            ))
        })?
        .to_owned();
    experiment.experiment.output_dir = sweep_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Ok(experiment)
}

fn summary_table(summaries: &[RunSummary]) -> String {
    let mut out = String::from("\nrun                               status     rounds  seconds  tokens/s  margin first -> last  accuracy last\n");
    for s in summaries {
        let first = s.round_metrics.first();
        let last = s.round_metrics.last();
        let get = |m: Option<&std::collections::BTreeMap<String, f64>>, k: &str| {
            m.and_then(|m| m.get(k))
                .map_or("-".to_owned(), |v| format!("{v:.4}"))
        };
        out.push_str(&format!(
            "{:<33} {:<10} {:>6}  {:>7.1}  {:>8.1}  {:>8} -> {:<8}  {:>13}\n",
            s.name,
            if s.skipped { "skipped" } else { "complete" },
            s.started_at_round as usize + s.round_metrics.len(),
            s.seconds,
            s.tokens_per_second,
            get(first, "rewards/margins"),
            get(last, "rewards/margins"),
            get(last, "rewards/accuracies"),
        ));
    }
    out
}

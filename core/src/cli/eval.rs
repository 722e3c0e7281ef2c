//! `fedpref eval <run-dir> [--round N] [--benchmarks a,b] [--base] [--eval-config FILE]`:
//! scores a checkpoint of a run (the newest by default; `--base`: the base model alone) on the
//! run's `[eval]` benchmarks, appending to its `eval/<benchmark>.jsonl` and
//! `metrics/evals.jsonl` as the run itself does, and prints one line per benchmark.

use std::{path::PathBuf, process::ExitCode};

use candle_core::DType;
use clap::Args;
use fedpref::{
    config::{self, ExperimentConfig},
    data::load_splits,
    eval::{BenchmarkResult, Evaluator, PromptFormat, Target},
    federation::{
        checkpoint,
        sampling::{derive, Stream},
    },
    progress::Progress,
    PluginHost,
};
use fedpref_model::{load_model_as, select_device, Adapter, LoraConfig};
use fedpref_rundir::RunDir;

use super::{DeviceArgs, UsageError};

/// Arguments of `fedpref eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run directory (holding config.toml and checkpoints/).
    run_dir: PathBuf,
    /// Score the checkpoint of this 0-based round instead of the newest one.
    #[arg(long, value_name = "N", conflicts_with = "base")]
    round: Option<u32>,
    /// Only these benchmarks (comma-separated names from [eval]).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    benchmarks: Vec<String>,
    /// Score the base model without any adapter.
    #[arg(long)]
    base: bool,
    /// Take the [eval] section from this config instead of the run's config.toml.
    #[arg(long, value_name = "FILE")]
    eval_config: Option<PathBuf>,
    /// Override a key of the run's config, e.g. `--set eval.batch_size=4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Runs `fedpref eval`.
pub fn run(args: &EvalArgs, plugin_dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    fedpref_model::init_cpu();
    let dir = RunDir::new(&args.run_dir);
    let mut config = config::load(
        &dir.config_file(),
        &args.device.with_overrides(&args.overrides),
    )?;
    if let Some(path) = &args.eval_config {
        config.eval = config::load(path, &[])?.eval;
    }
    let _held = dir.lock()?;
    if config.eval.benchmarks.is_empty() {
        return Err(UsageError(format!(
            "{} has no [eval] benchmarks; add some to it or pass --eval-config <config with [eval]> (e.g. configs/quickstart.toml)",
            dir.config_file().display()
        ))
        .into());
    }
    // A run directory may come from elsewhere: the plugin folders its config names are not
    // searched (code would load from wherever it points); pass --plugin-dir to use them.
    let mut builder = PluginHost::builder().default_dirs();
    for d in plugin_dirs {
        builder = builder.dir(d);
    }
    let host = builder.load()?;
    let progress = Progress::detect();
    let name = args
        .run_dir
        .file_name()
        .map_or_else(|| "run".to_owned(), |n| n.to_string_lossy().into_owned());
    progress.note(&format!("{name}: loading {}", config.model.path.display()));
    let device = select_device(&config.model.device)?;
    let mut model = load_model_as(&config.model.path, config.model.dtype.dtype(), &device)?;
    let (target, global) = if args.base {
        (Target::Base, Vec::new())
    } else {
        let checkpoint = checkpoint_dir(&dir, args.round)?;
        let restored = checkpoint::read(&checkpoint)?;
        let lora = &config.lora;
        let targets: Vec<&str> = lora.targets.iter().map(String::as_str).collect();
        let adapter = Adapter::new(
            &LoraConfig::new(lora.rank, lora.alpha, lora.dropout, &targets)?,
            model.decoder.config(),
            0,
            DType::F32,
            &device,
        )?;
        adapter.unflatten(&restored.global)?;
        model.decoder.attach_adapter(adapter)?;
        (Target::Round(restored.state.round), restored.global)
    };
    let only = (!args.benchmarks.is_empty()).then_some(args.benchmarks.as_slice());
    let eval_data = if needs_eval_split(&config, only) {
        let seed = config.experiment.seeds.first().copied().unwrap_or(0);
        load_splits(&config.data, derive(seed, Stream::EvalSplit, 0, 0))?.eval
    } else {
        None
    };
    let mut evaluator = Evaluator::new(
        &config.eval,
        &host,
        &args.run_dir,
        &model,
        eval_data.as_ref(),
        &config.data,
        only,
    )?;
    let results = evaluator.evaluate(&model, &global, target, &progress, &name)?;
    print!("{}", table(target, &results));
    let failed = results.iter().any(|r| r.summary.error.is_some());
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The checkpoint of `round`, or the newest one.
fn checkpoint_dir(dir: &RunDir, round: Option<u32>) -> anyhow::Result<PathBuf> {
    match round {
        Some(r) => {
            let path = dir.checkpoint_dir(r);
            if path.is_dir() {
                Ok(path)
            } else {
                Err(UsageError(format!(
                    "{} has no checkpoint of round {r} (kept: {}); older ones are pruned after each round",
                    dir.root().display(),
                    kept_rounds(dir)
                ))
                .into())
            }
        }
        None => dir.latest_checkpoint()?.ok_or_else(|| {
            UsageError(format!(
                "{} has no checkpoint yet; train first, or pass --base",
                dir.root().display()
            ))
            .into()
        }),
    }
}

fn kept_rounds(dir: &RunDir) -> String {
    let rounds: Vec<String> = dir
        .checkpoint_rounds()
        .unwrap_or_default()
        .iter()
        .map(u32::to_string)
        .collect();
    if rounds.is_empty() {
        "none".to_owned()
    } else {
        rounds.join(", ")
    }
}

fn needs_eval_split(config: &ExperimentConfig, only: Option<&[String]>) -> bool {
    config
        .eval
        .benchmarks
        .iter()
        .filter(|b| only.is_none_or(|names| names.contains(&b.name)))
        .any(|b| b.resolved_format() == PromptFormat::EvalSplit)
}

fn table(target: Target, results: &[BenchmarkResult]) -> String {
    let what = match target {
        Target::Round(r) => format!("global model after round {r}"),
        Target::Base => "base model".to_owned(),
    };
    let mut out = format!("\n{what}\nbenchmark            items  metrics\n");
    for r in results {
        let s = &r.summary;
        let metrics = match &s.error {
            Some(e) => format!("scorer failed: {e}"),
            None => s
                .metrics
                .iter()
                .filter(|(k, _)| !k.contains('/'))
                .map(|(k, v)| format!("{k}={}", trim_float(*v)))
                .collect::<Vec<_>>()
                .join(" "),
        };
        out.push_str(&format!("{:<20} {:>6}  {metrics}\n", s.benchmark, s.items));
    }
    out
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_round_lists_the_kept_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path());
        std::fs::create_dir_all(dir.checkpoint_dir(3)).unwrap();
        let err = checkpoint_dir(&dir, Some(1)).unwrap_err().to_string();
        assert!(err.contains("no checkpoint of round 1 (kept: 3)"), "{err}");
        assert!(checkpoint_dir(&dir, None)
            .unwrap_err()
            .to_string()
            .contains("--base"));
        assert_eq!(
            checkpoint_dir(&dir, Some(3)).unwrap(),
            dir.checkpoint_dir(3)
        );
    }
}

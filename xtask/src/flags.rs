//! Command-line flags of `cargo xtask`, one struct per command (clap derive).

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::assets::Group;

/// Project automation for fedpref.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
pub struct Xtask {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, fetch the assets, run the quickstart (DPO, KTO, KTOR) and write its report.
    Demo(Demo),
    /// Download the model, data and benchmark assets into `assets/` and verify them.
    Setup(Setup),
    /// Build every plugin and the `fedpref` binary into one folder.
    BuildPlugins(BuildPlugins),
    /// Run the whole test suite as CI does (fetching assets and building plugins first).
    Test(Test),
    /// Scaffold a new plugin crate under `plugins/<kind>s/<name>/`.
    NewPlugin(NewPlugin),
    /// Build special configurations: `--cuda` packs a GPU build (no GPU needed here).
    Build(Build),
    /// Benchmarks: `train-step`, `generate`, `dpo-step`, `kto-step` (arguments go to
    /// `fedpref bench`).
    Bench(Bench),
}

/// `cargo xtask build`.
#[derive(Debug, Args)]
pub struct Build {
    /// Build `fedpref` with CUDA (toolkit from pip wheels) and pack it with the plugins and
    /// the GPU tests into target/cuda-dist/fedpref-cuda.tar.xz.
    #[arg(long)]
    pub cuda: bool,
}

/// `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct Bench {
    /// `train-step`, `generate`, `dpo-step` or `kto-step`.
    pub which: BenchKind,
    /// Passed to `fedpref bench <which>`, e.g. `--device cuda --dtype bf16 --shape
    /// qwen2.5-0.5b --pytorch xtask/bench/lora_step.py` (see `fedpref bench <which> --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchKind {
    /// One LoRA training step: per-phase times, tokens/s, GFLOP/s, MFU, peak memory.
    TrainStep,
    /// Batched greedy generation with the KV cache: tokens/s.
    Generate,
    /// Local DPO steps as `fedpref run` takes them, with the loss plugin: tokens/s.
    DpoStep,
    /// Local KTO steps with their KL batch: tokens/s.
    KtoStep,
}

/// `cargo xtask demo`.
#[derive(Debug, Args)]
pub struct Demo {
    /// Start over: move runs/quickstart to runs/quickstart.previous first (needed after
    /// configs/quickstart.toml changed, as a sweep never mixes configs).
    #[arg(long)]
    pub fresh: bool,
}

/// `cargo xtask setup`.
#[derive(Debug, Args)]
pub struct Setup {
    /// Also fetch an opt-in asset group (repeatable): `qwen` is Qwen2.5-Coder-0.5B-Instruct
    /// Q4_K_M (about 400 MB).
    #[arg(long = "with", value_name = "GROUP")]
    pub with: Vec<Group>,
}

/// `cargo xtask build-plugins`.
#[derive(Debug, Args)]
pub struct BuildPlugins {
    /// Build with the release profile (into target/release).
    #[arg(long)]
    pub release: bool,
}

/// `cargo xtask test`.
#[derive(Debug, Args)]
pub struct Test {
    /// Also test the `judge` scorer against a real llama-cpp-python server (installs it into
    /// target/judge-venv on first use, building llama.cpp: minutes; not run in CI).
    #[arg(long)]
    pub judge: bool,
    /// Run only the Flower deployment test (a SuperLink and three SuperNodes on 127.0.0.1;
    /// installs flwr into target/flower-venv on first use); the whole suite runs it too.
    #[arg(long)]
    pub flower: bool,
    /// Run only the fault suite (kills, failing clients, races, malformed inputs) and print
    /// its counts; the whole suite runs it too.
    #[arg(long)]
    pub faults: bool,
}

/// `cargo xtask new-plugin`.
#[derive(Debug, Args)]
pub struct NewPlugin {
    /// The kind of component the plugin provides.
    pub kind: PluginKind,
    /// The plugin's name: lowercase letters, digits and dashes, starting with a letter
    /// (e.g. `my-loss`); the package becomes `fedpref-<kind>-<name>`.
    pub name: String,
}

/// The plugin kinds `new-plugin` can scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PluginKind {
    /// A preference loss.
    Loss,
    /// A server aggregation rule.
    Aggregator,
    /// A data partition rule.
    Partitioner,
    /// A benchmark scorer.
    Scorer,
    /// An update codec.
    Codec,
}

impl PluginKind {
    /// The singular lowercase name (`loss`), as in package names.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Loss => "loss",
            PluginKind::Aggregator => "aggregator",
            PluginKind::Partitioner => "partitioner",
            PluginKind::Scorer => "scorer",
            PluginKind::Codec => "codec",
        }
    }

    /// The folder under `plugins/` (`losses`).
    pub fn folder(self) -> &'static str {
        match self {
            PluginKind::Loss => "losses",
            PluginKind::Aggregator => "aggregators",
            PluginKind::Partitioner => "partitioners",
            PluginKind::Scorer => "scorers",
            PluginKind::Codec => "codecs",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn with_qwen_parses_and_default_is_not_a_choice() {
        let flags = Xtask::try_parse_from(["xtask", "setup", "--with", "qwen"]).unwrap();
        let Command::Setup(setup) = flags.command else {
            panic!("expected setup")
        };
        assert_eq!(setup.with, vec![Group::Qwen]);
        assert!(Xtask::try_parse_from(["xtask", "setup", "--with", "default"]).is_err());
    }

    #[test]
    fn test_takes_judge() {
        let Command::Test(test) = Xtask::try_parse_from(["xtask", "test", "--judge"])
            .unwrap()
            .command
        else {
            panic!("expected test")
        };
        assert!(test.judge);
    }
}

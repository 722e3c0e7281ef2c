//! Synthetic sweeps: run directories with `config.toml`, `manifest.json` and metrics written
//! as `fedpref run` writes them, with values from a formula the tests can compute by hand.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use serde_json::json;

/// The value of `metric` after `round` (0-based) for a run: distinct per method, aggregator
/// and seed so that means, stds and best marks are checkable by hand.
pub fn value(metric: &str, method: &str, aggregator: &str, seed: u64, round: u32) -> f64 {
    let method_base = match method {
        "dpo" => 0.1,
        "kto" => 0.3,
        "ktor" => 0.2,
        _ => 0.0,
    };
    let aggregator_shift = if aggregator == "fedavg" { 0.0 } else { 0.05 };
    let seed_shift = 0.02 * seed as f64;
    let base = method_base + aggregator_shift + seed_shift + 0.01 * f64::from(round);
    match metric {
        "rewards/margins" => base,
        "rewards/accuracies" => 0.5 + base,
        "loss" => 0.7 - base,
        _ => base,
    }
}

/// One run of a synthetic sweep.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub method: &'static str,
    pub aggregator: &'static str,
    pub seed: u64,
    pub rounds: u32,
}

impl RunSpec {
    pub fn dir_name(&self) -> String {
        format!("{}-{}-s{}", self.method, self.aggregator, self.seed)
    }
}

/// Writes a run directory for `spec` under `sweep`; returns its path.
pub fn write_run(sweep: &Path, spec: &RunSpec) -> PathBuf {
    let dir = sweep.join(spec.dir_name());
    std::fs::create_dir_all(dir.join("metrics")).unwrap();
    std::fs::create_dir_all(dir.join("eval")).unwrap();
    std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
    let partitioner = if spec.method == "ktor" {
        "redistribute"
    } else {
        "iid"
    };
    let config = format!(
        r#"[experiment]
name = "{name}"
methods = ["{method}"]
aggregators = ["{aggregator}"]
seeds = [{seed}]
output_dir = "runs"

[model]
path = "assets/models/tiny.gguf"
dtype = "f32"

[lora]
rank = 8
alpha = 16.0
targets = ["q_proj", "v_proj"]

[data]
path = "assets/data/pairs.json"
limit = 16

[partition]
name = "iid"

[federation]
clients = 2
clients_per_round = 2
rounds = {rounds}

[training]
batch_size = 2
local_steps = 2
lr = 0.0005

[losses.{method}]
beta = 0.1
"#,
        name = sweep.file_name().unwrap().to_string_lossy(),
        method = spec.method,
        aggregator = spec.aggregator,
        seed = spec.seed,
        rounds = spec.rounds,
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let clients = if spec.method == "ktor" {
        json!([[0, 5, 3], [0, 3, 5]])
    } else {
        json!([[8, 0, 0], [8, 0, 0]])
    };
    let manifest = json!({
        "layout_version": 1,
        "fedpref_version": "0.1.0",
        "components": {
            "loss": {"name": spec.method, "plugin": "p", "version": "0.1.0", "file": "x.so"},
            "aggregator": {"name": spec.aggregator, "plugin": "p", "version": "0.1.0", "file": "x.so"},
            "partitioner": {"name": partitioner, "plugin": "p", "version": "0.1.0", "file": "x.so"},
        },
        "seed": spec.seed,
        "machine": {"platform": "linux-x86_64", "cpus": 2, "device": "cpu"},
        "data": {"path": "pairs.json", "train_examples": 16, "eval_examples": 0, "invalid": {}, "kept": 16, "truncated": 0, "dropped": 0},
        "partition": {"partitioner": partitioner, "units": [8, 8], "clients": clients, "metrics": {"clients": 2.0}},
        "status": "complete",
        "rounds_completed": spec.rounds,
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let (mut steps, mut rounds) = (String::new(), String::new());
    for round in 0..spec.rounds {
        for line in round_lines(spec, round) {
            writeln!(rounds, "{line}").unwrap();
        }
        for line in step_lines(spec, round) {
            writeln!(steps, "{line}").unwrap();
        }
    }
    std::fs::write(dir.join("metrics/rounds.jsonl"), rounds).unwrap();
    std::fs::write(dir.join("metrics/steps.jsonl"), steps).unwrap();
    dir
}

/// The `rounds.jsonl` row of `round`.
pub fn round_lines(spec: &RunSpec, round: u32) -> Vec<String> {
    let v = |m: &str| value(m, spec.method, spec.aggregator, spec.seed, round);
    vec![json!({
        "round": round, "lr": 0.0005, "sampled": [0, 1], "trained": [0, 1], "dropped": [], "rejected": [],
        "skipped": null, "bytes_down": 2_000_000, "bytes_up": 1_000_000, "tokens": 100, "seconds": 1.5,
        "aggregation_seconds": 0.01,
        "train": {"loss": v("loss"), "rewards/margins": v("rewards/margins"), "rewards/accuracies": v("rewards/accuracies")},
        "aggregator": {"clients": 2.0, "update_norm": 0.3},
    })
    .to_string()]
}

/// The `steps.jsonl` rows of `round`: two clients, two steps, client 1 offset by +0.02 so the
/// round's mean over clients equals [`value`] + 0.01.
pub fn step_lines(spec: &RunSpec, round: u32) -> Vec<String> {
    let mut lines = Vec::new();
    for client in 0..2u32 {
        for step in 0..2u32 {
            let v = |m: &str| {
                value(m, spec.method, spec.aggregator, spec.seed, round) + 0.02 * f64::from(client)
            };
            lines.push(
                json!({
                    "round": round, "client": client, "step": step, "loss": v("loss"), "lr": 0.0005,
                    "grad_norm": 1.0, "tokens": 25, "seconds": 0.3,
                    "metrics": {"rewards/margins": v("rewards/margins"), "rewards/accuracies": v("rewards/accuracies")},
                })
                .to_string(),
            );
        }
    }
    lines
}

/// A sweep of `methods` x `aggregators` x `seeds` with `rounds` rounds, in `root/name`.
pub fn write_sweep(
    root: &Path,
    name: &str,
    methods: &[&'static str],
    aggregators: &[&'static str],
    seeds: &[u64],
    rounds: u32,
) -> PathBuf {
    let sweep = root.join(name);
    for &method in methods {
        for &aggregator in aggregators {
            for &seed in seeds {
                write_run(
                    &sweep,
                    &RunSpec {
                        method,
                        aggregator,
                        seed,
                        rounds,
                    },
                );
            }
        }
    }
    // What `fedpref run` leaves beside the runs; not a run.
    std::fs::create_dir_all(sweep.join("cache")).unwrap();
    sweep
}

/// Appends `metrics/evals.jsonl` rows for `benchmark` with `metrics` at `round`.
pub fn append_eval(run: &Path, round: u32, benchmark: &str, metrics: serde_json::Value) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.join("metrics/evals.jsonl"))
        .unwrap();
    writeln!(
        file,
        "{}",
        json!({"round": round, "benchmark": benchmark, "metrics": metrics})
    )
    .unwrap();
}

/// Approximate equality for hand-computed values.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// One line of `eval/<benchmark>.jsonl`.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub score: Option<f64>,
    pub outcome: &'static str,
    pub detail: String,
}

impl Item {
    /// A scored item.
    pub fn scored(id: impl ToString, score: f64) -> Self {
        Item {
            id: id.to_string(),
            score: Some(score),
            outcome: "scored",
            detail: String::new(),
        }
    }

    /// An item whose judge reply could not be read.
    pub fn unparsed(id: impl ToString) -> Self {
        Item {
            id: id.to_string(),
            score: None,
            outcome: "unparsed",
            detail: "no rating".into(),
        }
    }
}

/// Appends `items` of `benchmark` at `round` to the run's `eval/<benchmark>.jsonl`, as the host
/// writes them.
pub fn append_items(run: &Path, round: u32, benchmark: &str, items: &[Item]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.join(format!("eval/{benchmark}.jsonl")))
        .unwrap();
    for item in items {
        let row = json!({
            "round": round, "model": "global", "benchmark": benchmark, "id": item.id,
            "category": "", "prompt": "p", "answer": "a", "score": item.score,
            "outcome": item.outcome, "detail": item.detail, "tokens": 3, "cached": false,
        });
        writeln!(file, "{row}").unwrap();
    }
}

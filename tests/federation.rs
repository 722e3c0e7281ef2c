//! `fedpref run` end to end on a tiny random model: resuming after SIGKILL gives the same
//! adapter bit for bit, sweeps resume, faults are survived, bad combinations are refused.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::util::{error_lines, fedpref, fedpref_bin};

/// A scratch experiment: a tiny model, a small pair file, and a config writer.
struct Experiment {
    dir: tempfile::TempDir,
}

impl Experiment {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        fedpref_model::testing::write_tiny_model(&dir.path().join("model"), 7).expect("tiny model");
        let words = [
            "apple", "river", "stone", "cloud", "ember", "maple", "tide", "quartz",
        ];
        let rows: Vec<String> = (0..24)
            .map(|i| {
                let w = |k: usize| words[(i * 3 + k) % words.len()];
                serde_json::json!({
                    "prompt": format!("Name something like {} and {}.", w(0), w(1)),
                    "chosen": format!("A {} near the {}.", w(2), w(0)),
                    "rejected": format!("{} {} {}", w(1), w(1), w(3)),
                })
                .to_string()
            })
            .collect();
        std::fs::write(dir.path().join("pairs.jsonl"), rows.join("\n")).expect("write data");
        Experiment { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name.toml` for a sweep over `methods`, with extra TOML appended.
    fn config(&self, name: &str, methods: &[&str], extra: &str) -> PathBuf {
        let methods = methods
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            r#"
[experiment]
name = "{name}"
methods = [{methods}]
aggregators = ["fedavg"]
seeds = [3]
output_dir = "{out}"

[model]
path = "{model}"

[data]
path = "{data}"
max_length = 96
max_prompt_length = 48

[federation]
clients = 4
clients_per_round = 2
rounds = 12

[training]
batch_size = 2
local_steps = 3
lr = 1e-2
lr_min = 1e-3

[lora]
rank = 4
alpha = 8
dropout = 0.1
targets = ["q_proj", "v_proj", "o_proj"]
{extra}
"#,
            out = self.path().join("runs").display(),
            model = self.path().join("model").display(),
            data = self.path().join("pairs.jsonl").display(),
        );
        let path = self.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }

    fn run_dir(&self, sweep: &str, run: &str) -> PathBuf {
        self.path().join("runs").join(sweep).join(run)
    }
}

fn final_adapter(run_dir: &Path) -> Vec<u8> {
    let latest = std::fs::read_to_string(run_dir.join("checkpoints/latest")).expect("a checkpoint");
    std::fs::read(
        run_dir
            .join("checkpoints")
            .join(latest.trim())
            .join("global.f32"),
    )
    .expect("global.f32")
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("metrics file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Starts `fedpref run config` and SIGKILLs it once `steps.jsonl` of `run_dir` has
/// `kill_after` lines. Returns whether it was killed before finishing.
fn run_and_kill(config: &Path, run_dir: &Path, kill_after: usize) -> bool {
    let mut child = Command::new(fedpref_bin())
        .args(["run", config.to_str().expect("utf-8 path")])
        .env_remove("FEDPREF_PLUGIN_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fedpref starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(_status) = child.try_wait().expect("poll child") {
            return false;
        }
        if line_count(&run_dir.join("metrics/steps.jsonl")) >= kill_after {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return true;
        }
        assert!(Instant::now() < deadline, "the run did not progress");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_killed_and_resumed_run_equals_an_uninterrupted_one() {
    let experiment = Experiment::new();
    let reference = experiment.config("straight", &["dpo"], "");
    let run = fedpref(&["run", reference.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let straight = experiment.run_dir("straight", "dpo-fedavg-s3");
    let expected = final_adapter(&straight);
    let rounds = jsonl(&straight.join("metrics/rounds.jsonl"));
    assert_eq!(rounds.len(), 12);
    let steps = jsonl(&straight.join("metrics/steps.jsonl"));
    assert_eq!(steps.len(), 12 * 2 * 3);

    for (i, kill_after) in [1usize, 20, 45].into_iter().enumerate() {
        let name = format!("killed{i}");
        let config = experiment.config(&name, &["dpo"], "");
        let run_dir = experiment.run_dir(&name, "dpo-fedavg-s3");
        let killed = run_and_kill(&config, &run_dir, kill_after);
        assert!(
            killed,
            "the run finished before the kill at {kill_after} steps; make it longer"
        );
        let resumed = fedpref(&["run", config.to_str().expect("utf-8 path")]);
        assert_eq!(resumed.code, 0, "{}", resumed.stderr);
        assert_eq!(
            final_adapter(&run_dir),
            expected,
            "killed after {kill_after} steps"
        );
        // No round or step is recorded twice.
        let resumed_rounds = jsonl(&run_dir.join("metrics/rounds.jsonl"));
        let round_numbers: Vec<u64> = resumed_rounds
            .iter()
            .map(|r| r["round"].as_u64().expect("round"))
            .collect();
        assert_eq!(round_numbers, (0..12).collect::<Vec<_>>());
        assert_eq!(
            line_count(&run_dir.join("metrics/steps.jsonl")),
            steps.len()
        );
    }
}

/// Client-level DP with adaptive clipping: Poisson-sampled clients, clipped updates, noise
/// drawn from (seed, round), the clip norm carried in checkpoints: a killed and resumed run adds
/// the same noise at the same clip norms, and each round reports the ε spent so far.
#[test]
fn a_killed_and_resumed_private_run_equals_an_uninterrupted_one() {
    let experiment = Experiment::new();
    let private = |name: &str| {
        let config = experiment.config(
            name,
            &["dpo"],
            "[privacy]\nmode = \"client\"\nclip_norm = 0.05\nnoise_multiplier = 0.8\n\
             target_quantile = 0.5\nquantile_noise = 1.0\n",
        );
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text.replace("rounds = 12\n", "rounds = 12\nsampling = \"poisson\"\n");
        std::fs::write(&config, text).expect("config");
        config
    };
    let reference = private("straight");
    let run = fedpref(&["run", reference.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let straight = experiment.run_dir("straight", "dpo-fedavg-s3");
    let rounds = jsonl(&straight.join("metrics/rounds.jsonl"));
    let epsilons: Vec<f64> = rounds
        .iter()
        .map(|r| {
            r["privacy"]["epsilon"]
                .as_f64()
                .expect("epsilon in every round")
        })
        .collect();
    assert!(epsilons.windows(2).all(|w| w[0] < w[1]), "{epsilons:?}");
    let clips: Vec<f64> = rounds
        .iter()
        .map(|r| r["privacy"]["clip_norm"].as_f64().expect("a clip norm"))
        .collect();
    assert!(clips.windows(2).all(|w| w[0] != w[1]), "{clips:?}");
    let sizes: Vec<usize> = rounds
        .iter()
        .map(|r| r["sampled"].as_array().map_or(0, Vec::len))
        .collect();
    assert!(
        sizes.iter().any(|&n| n != 2),
        "Poisson sampling varies: {sizes:?}"
    );

    let config = private("killed");
    let run_dir = experiment.run_dir("killed", "dpo-fedavg-s3");
    assert!(
        run_and_kill(&config, &run_dir, 15),
        "the run finished before the kill"
    );
    let resumed = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(final_adapter(&run_dir), final_adapter(&straight));
}

/// Example-level DP-SGD (KTO: each answer its own batch, no KL batch): every step records its
/// Poisson sample and ε, each round the largest ε of its clients, and a killed and resumed run
/// draws the same samples and noise.
#[test]
fn a_killed_and_resumed_example_private_run_equals_an_uninterrupted_one() {
    let experiment = Experiment::new();
    let private = |name: &str| {
        experiment.config(
            name,
            &["kto"],
            "[privacy]\nmode = \"example\"\nclip_norm = 0.5\nnoise_multiplier = 0.9\n",
        )
    };
    let reference = private("straight");
    let run = fedpref(&["run", reference.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let straight = experiment.run_dir("straight", "kto-fedavg-s3");
    let steps = jsonl(&straight.join("metrics/steps.jsonl"));
    let drawn: Vec<u64> = steps
        .iter()
        .map(|s| {
            s["privacy"]["examples"]
                .as_u64()
                .expect("a sample in every step")
        })
        .collect();
    assert!(
        drawn.iter().any(|&n| n != drawn[0]),
        "Poisson batches vary: {drawn:?}"
    );
    let rounds = jsonl(&straight.join("metrics/rounds.jsonl"));
    for round in &rounds {
        let index = round["round"].as_u64().expect("round");
        let largest = steps
            .iter()
            .filter(|s| s["round"].as_u64() == Some(index))
            .map(|s| s["privacy"]["epsilon"].as_f64().expect("epsilon"))
            .fold(0.0, f64::max);
        assert_eq!(
            round["privacy"]["epsilon"].as_f64(),
            Some(largest),
            "round {index}"
        );
    }

    let config = private("killed");
    let run_dir = experiment.run_dir("killed", "kto-fedavg-s3");
    assert!(
        run_and_kill(&config, &run_dir, 15),
        "the run finished before the kill"
    );
    let resumed = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(final_adapter(&run_dir), final_adapter(&straight));
}

#[test]
fn a_sweep_skips_complete_runs_and_resumes_the_rest() {
    let experiment = Experiment::new();
    let config = experiment.config("sweep", &["dpo", "kto"], "");
    let kto_dir = experiment.run_dir("sweep", "kto-fedavg-s3");
    // Kill once the second run (KTO) is past its first checkpoint (2 clients x 3 steps).
    assert!(
        run_and_kill(&config, &kto_dir, 8),
        "the sweep finished before the kill"
    );
    let dpo_manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            experiment
                .run_dir("sweep", "dpo-fedavg-s3")
                .join("manifest.json"),
        )
        .expect("manifest"),
    )
    .expect("manifest JSON");
    assert_eq!(dpo_manifest["status"], "complete");

    let run = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("dpo-fedavg-s3: already complete, skipped"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("kto-fedavg-s3: resuming after round"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("kto-fedavg-s3"), "{}", run.stdout);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kto_dir.join("manifest.json")).expect("manifest"))
            .expect("JSON");
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["rounds_completed"], 12);
}

#[test]
fn a_run_that_fails_costs_that_run_and_the_sweep_goes_on() {
    let experiment = Experiment::new();
    // Single labelled answers: DPO finds no pair when its run reads the data; KTO trains.
    let singles: Vec<String> = (0..24)
        .map(|i| {
            serde_json::json!({"prompt": format!("Say something about {i}."),
                               "completion": format!("Number {i} is fine."), "label": i % 2 == 0})
            .to_string()
        })
        .collect();
    let data = experiment.dir.path().join("singles.jsonl");
    std::fs::write(&data, singles.join("\n")).expect("write singles");
    let config = experiment.config("one-fails", &["dpo", "kto"], "");
    let run = fedpref(&[
        "run",
        config.to_str().expect("utf-8 path"),
        "--set",
        "federation.rounds=2",
        "--set",
        &format!("data.path={:?}", data.display().to_string()),
    ]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("dpo-fedavg-s3: failed, the sweep goes on")
            && run.stderr.contains("1 of 2 runs failed")
            && run.stderr.contains("pairs"),
        "{}",
        run.stderr
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            experiment
                .run_dir("one-fails", "kto-fedavg-s3")
                .join("manifest.json"),
        )
        .expect("manifest"),
    )
    .expect("JSON");
    assert_eq!(manifest["status"], "complete");
    assert!(run.stdout.contains("kto-fedavg-s3"), "{}", run.stdout);
}

#[test]
fn dpo_on_redistributed_data_is_refused_before_any_work() {
    let experiment = Experiment::new();
    let config = experiment.config(
        "refused",
        &["ktor", "dpo"],
        "[partition]\nname = \"redistribute\"\n",
    );
    let run = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = error_lines(&run);
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains("method \"dpo\" trains on (chosen, rejected) pairs"),
        "{}",
        errors[0]
    );
    assert!(
        !experiment.path().join("runs/refused").exists(),
        "nothing may be written before the check"
    );
}

#[test]
fn ktor_runs_on_redistributed_answers() {
    let experiment = Experiment::new();
    let config = experiment.config("ktor", &["ktor"], "");
    let config_text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("rounds = 12", "rounds = 2");
    std::fs::write(&config, config_text).expect("write config");
    let run = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            experiment
                .run_dir("ktor", "ktor-fedavg-s3")
                .join("manifest.json"),
        )
        .expect("manifest"),
    )
    .expect("JSON");
    assert_eq!(manifest["partition"]["partitioner"], "redistribute");
    // 24 pairs dealt iid to 4 clients give each 6 pairs: redistributed, each keeps its 12
    // single answers.
    let units: Vec<u64> = manifest["partition"]["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| u.as_u64().expect("count"))
        .collect();
    assert_eq!(units, [12, 12, 12, 12]);
}

#[test]
fn dropped_clients_and_diverged_updates_are_logged_not_aggregated() {
    let experiment = Experiment::new();
    let config = experiment.config("faults", &["dpo"], "");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("rounds = 12", "rounds = 6\ndropout = 0.5");
    std::fs::write(&config, text).expect("write config");
    let run = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rounds = jsonl(
        &experiment
            .run_dir("faults", "dpo-fedavg-s3")
            .join("metrics/rounds.jsonl"),
    );
    let dropped: usize = rounds
        .iter()
        .map(|r| r["dropped"].as_array().expect("dropped").len())
        .sum();
    let trained: usize = rounds
        .iter()
        .map(|r| r["trained"].as_array().expect("trained").len())
        .sum();
    assert_eq!(dropped + trained, 6 * 2);
    assert!(
        dropped > 0 && trained > 0,
        "with p = 0.5 over 12 client-rounds both must occur: {rounds:?}"
    );
    assert!(rounds
        .iter()
        .flat_map(|r| r["dropped"].as_array().expect("dropped"))
        .all(|d| d["reason"] == "failed"));

    // A loss limit below DPO's starting loss (ln 2) rejects every update: rounds are skipped with
    // a reason, the global adapter never changes, and a run that never aggregated fails.
    let config = experiment.config("diverged", &["dpo"], "");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("rounds = 12", "rounds = 2")
        .replace("lr_min = 1e-3", "lr_min = 1e-3\nmax_loss = 0.1");
    std::fs::write(&config, text).expect("write config");
    let run = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("no round could aggregate"),
        "{}",
        run.stderr
    );
    let run_dir = experiment.run_dir("diverged", "dpo-fedavg-s3");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).expect("manifest"))
            .expect("JSON");
    assert_eq!(manifest["status"], "failed");
    let rounds = jsonl(&run_dir.join("metrics/rounds.jsonl"));
    for round in &rounds {
        assert_eq!(
            round["trained"].as_array().expect("trained").len(),
            0,
            "{round}"
        );
        assert_eq!(
            round["rejected"].as_array().expect("rejected").len(),
            2,
            "{round}"
        );
        assert!(
            round["skipped"]
                .as_str()
                .expect("a reason")
                .contains("no client update survived"),
            "{round}"
        );
        assert!(
            round["rejected"][0]["reason"]
                .as_str()
                .expect("reason")
                .contains("diverged"),
            "{round}"
        );
    }
    let first = std::fs::read(run_dir.join("checkpoints/round-0001/global.f32")).expect("global");
    assert!(
        first.chunks(4).any(|c| c != [0, 0, 0, 0]),
        "the LoRA A matrices start non-zero"
    );
}

#[test]
fn ctrl_c_stops_after_the_current_step_and_the_run_continues_later() {
    let experiment = Experiment::new();
    let config = experiment.config("interrupted", &["dpo"], "");
    let run_dir = experiment.run_dir("interrupted", "dpo-fedavg-s3");
    let child = Command::new(fedpref_bin())
        .args(["run", config.to_str().expect("utf-8 path")])
        .env_remove("FEDPREF_PLUGIN_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fedpref starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while line_count(&run_dir.join("metrics/steps.jsonl")) < 10 {
        assert!(Instant::now() < deadline, "the run did not progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let output = child.wait_with_output().expect("fedpref exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted during round"), "{stderr}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).expect("manifest"))
            .expect("JSON");
    assert_eq!(manifest["status"], "running");
    let resumed = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("resuming after round"),
        "{}",
        resumed.stderr
    );
}

#[test]
fn data_inspect_reports_token_lengths_under_a_model() {
    let experiment = Experiment::new();
    let model = experiment.path().join("model");
    let data = experiment.path().join("pairs.jsonl");
    let run = fedpref(&[
        "data",
        "inspect",
        data.to_str().expect("utf-8 path"),
        "--model",
        model.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("lengths (tokens,"), "{}", run.stdout);
    // Default limits (512 / 256) keep every one of these short examples whole.
    assert!(
        run.stdout.contains("24 fit, 0 truncated, 0 dropped"),
        "{}",
        run.stdout
    );
}

/// Compressed links: top-k with error feedback up, int8 broadcasts down. Every count a round
/// records is an encoding's length (the codecs' size formulas), a client is sent the broadcasts
/// it missed, and a killed and resumed run (residuals and the clients' model in its
/// checkpoints) equals an uninterrupted one.
#[test]
fn a_killed_and_resumed_compressed_run_equals_an_uninterrupted_one() {
    let experiment = Experiment::new();
    let extra = "[compression]\nuplink = \"top-k\"\ndownlink = \"int8\"\n\
                 [codecs.top-k]\nfraction = 0.05\n";
    let reference = experiment.config("straight", &["dpo"], extra);
    let run = fedpref(&["run", reference.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let straight = experiment.run_dir("straight", "dpo-fedavg-s3");
    let n = final_adapter(&straight).len() as u64 / 4;
    let (top_k, int8) = (8 * (n * 5).div_ceil(100), n + 4 * n.div_ceil(64));
    let rounds = jsonl(&straight.join("metrics/rounds.jsonl"));
    let mut last_seen = std::collections::BTreeMap::new();
    for round in &rounds {
        let index = round["round"].as_u64().expect("round");
        let links = &round["compression"];
        assert_eq!(links["uplink"], "top-k", "{round}");
        assert_eq!(links["broadcast"].as_u64(), Some(int8), "{round}");
        let trained = round["trained"].as_array().expect("trained");
        for client in trained {
            let key = client.to_string();
            assert_eq!(links["up"][&key].as_u64(), Some(top_k), "{round}");
            // Every broadcast since the client last took part, or the model as float32 when
            // those add up to more (FedAvg sends no plan).
            let missed = index + 1 - last_seen.insert(key.clone(), index + 1).unwrap_or(0);
            let sent = (missed * int8).min(4 * n);
            assert_eq!(links["down"][&key].as_u64(), Some(sent), "{round}");
        }
        assert_eq!(
            round["bytes_up"].as_u64(),
            Some(top_k * trained.len() as u64)
        );
        assert!(
            links["residual_norm"].as_f64().expect("residual") > 0.0,
            "{round}"
        );
    }

    let config = experiment.config("killed", &["dpo"], extra);
    let run_dir = experiment.run_dir("killed", "dpo-fedavg-s3");
    assert!(
        run_and_kill(&config, &run_dir, 15),
        "the run finished before the kill"
    );
    let resumed = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(final_adapter(&run_dir), final_adapter(&straight));
}

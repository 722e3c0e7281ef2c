//! A run taken apart into `fedpref server` / `fedpref client` commands, driven by the shell
//! loop of `deploy/shell/federate.sh`, ends with the simulated `fedpref run`'s adapter bit for
//! bit; a client that fails costs that client.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use fedpref::federation::worker::{read_global, GlobalModel};

use crate::util::{fedpref, fedpref_bin, repo_root, write_tiny_model_and_pairs};

/// A config of one run on the tiny model: 3 clients, 2 sampled per round, 2 rounds, with
/// `training` lines added to its `[training]` table and `federation` lines to its
/// `[federation]` table, and `extra` tables at the end.
fn write_config(dir: &Path, method: &str, aggregator: &str, lines: [&str; 3]) -> PathBuf {
    let [training, federation, extra] = lines;
    let text = format!(
        r#"
[experiment]
name = "deploy"
methods = ["{method}"]
aggregators = ["{aggregator}"]
seeds = [5]
output_dir = "{out}"

[model]
path = "{model}"

[data]
path = "{data}"
max_length = 64
max_prompt_length = 32

[federation]
clients = 3
clients_per_round = 2
rounds = 2
{federation}

[training]
batch_size = 2
local_steps = 2
lr = 1e-2
lr_min = 1e-3
{training}

[lora]
rank = 4
alpha = 8
dropout = 0.1
targets = ["q_proj", "v_proj"]
{extra}
"#,
        out = dir.join("runs").display(),
        model = dir.join("model").display(),
        data = dir.join("pairs.jsonl").display(),
    );
    // A federation line that sets the rounds replaces the default's.
    let text = if federation.starts_with("rounds") {
        text.replace("rounds = 2\n", "")
    } else {
        text
    };
    let path = dir.join(format!("{method}-{aggregator}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs `deploy/shell/federate.sh config work`, returning its stderr.
fn federate(config: &Path, work: &Path) -> String {
    let output = Command::new("bash")
        .arg(repo_root().join("deploy/shell/federate.sh"))
        .args([config, work])
        .env("FEDPREF", fedpref_bin())
        .env_remove("FEDPREF_PLUGIN_PATH")
        .output()
        .expect("bash starts");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "federate.sh failed:\n{stderr}");
    stderr
}

fn simulated_global(dir: &Path, config: &Path, run: &str) -> Vec<u32> {
    let finished = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(finished.code, 0, "fedpref run failed:\n{}", finished.stderr);
    let run_dir = dir.join("runs/deploy").join(run);
    let latest = std::fs::read_to_string(run_dir.join("checkpoints/latest")).expect("checkpoint");
    let bytes = std::fs::read(
        run_dir
            .join("checkpoints")
            .join(latest.trim())
            .join("global.f32"),
    )
    .expect("global.f32");
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn deployed_global(work: &Path) -> Vec<u32> {
    match read_global(&work.join("global-final.safetensors")).expect("final global") {
        (GlobalModel::Params(params), _) => params.iter().map(|p| p.to_bits()).collect(),
        (other, _) => panic!("the final global is not parameters: {other:?}"),
    }
}

fn simulated_rounds(dir: &Path, run: &str) -> Vec<serde_json::Value> {
    let path = dir
        .join("runs/deploy")
        .join(run)
        .join("metrics/rounds.jsonl");
    std::fs::read_to_string(path)
        .expect("rounds.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

fn rounds(work: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(work.join("rounds.jsonl"))
        .expect("rounds.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

#[test]
fn the_shell_loop_of_server_and_client_commands_ends_with_the_simulated_adapter() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_tiny_model_and_pairs(dir.path(), 24);
    let cases = [
        // SCAFFOLD sends each client a correction; kept AdamW moments travel as client state.
        ("dpo", "scaffold", ["keep_optimizer_state = true", "", ""]),
        // KTO's KL sequences take reference log-probs computed where the client trains.
        ("kto", "fedavg", ["", "", ""]),
        // Client-level DP: the server clips, adds the (seeded) noise and accounts; with
        // adaptive clipping its state carries the clip norm from round to round.
        (
            "dpo",
            "fedadam",
            [
                "",
                "sampling = \"poisson\"",
                "[privacy]\nmode = \"client\"\nclip_norm = 0.05\ntarget_quantile = 0.5\n\
                 quantile_noise = 1.0\n",
            ],
        ),
        // Example-level DP-SGD: clients sample, clip and noise; the server only accounts.
        (
            "ktor",
            "fedavg",
            ["", "", "[privacy]\nmode = \"example\"\nclip_norm = 0.5\n"],
        ),
        // Compressed links: top-k with error feedback kept by the client, int8 broadcasts
        // that clients catch up on; 3 rounds, so some client misses one.
        (
            "dpo",
            "fedavg",
            [
                "",
                "rounds = 3",
                "[compression]\nuplink = \"top-k\"\ndownlink = \"int8\"\n\
                 [codecs.top-k]\nfraction = 0.05\n",
            ],
        ),
        // Float32 broadcasts: a client that missed two is sent the clients' model instead.
        (
            "kto",
            "fedavgm",
            ["", "rounds = 3", "[compression]\ndownlink = \"f32\"\n"],
        ),
    ];
    for (method, aggregator, lines) in cases {
        let config = write_config(dir.path(), method, aggregator, lines);
        let run = format!("{method}-{aggregator}-s5");
        let simulated = simulated_global(dir.path(), &config, &run);
        let work = dir.path().join(format!("work-{run}"));
        federate(&config, &work);
        assert_eq!(deployed_global(&work), simulated, "{run}");
        let records = rounds(&work);
        let simulated_records = simulated_rounds(dir.path(), &run);
        assert_eq!(records.len(), simulated_records.len(), "{run}");
        // The bytes each client sent and was sent are the simulated run's.
        for (deployed, simulated) in records.iter().zip(&simulated_records) {
            for key in ["bytes_up", "bytes_down", "compression"] {
                let field = |r: &serde_json::Value| {
                    let mut value = r[key].clone();
                    if let Some(links) = value.as_object_mut() {
                        // Times, and the residuals only the clients hold, are not compared.
                        for local in ["encode_seconds", "decode_seconds", "residual_norm"] {
                            links.remove(local);
                        }
                    }
                    value
                };
                assert_eq!(field(deployed), field(simulated), "{run}: {key}");
            }
        }
        let private = lines[2].contains("privacy");
        for record in &records {
            let sampled = record["sampled"].as_array().map(Vec::len);
            assert_eq!(
                record["trained"].as_array().map(Vec::len),
                sampled,
                "{record}"
            );
            assert!(record["bytes_up"].as_u64().is_some(), "{record}");
            assert_eq!(record["privacy"]["epsilon"].is_f64(), private, "{record}");
        }
        if lines[2].contains("target_quantile") {
            let clip = |r: &serde_json::Value| r["privacy"]["clip_norm"].as_f64();
            assert!(clip(&records[0]).is_some() && clip(&records[0]) != clip(&records[1]));
        }
    }
}

#[test]
fn a_client_with_a_malformed_shard_costs_that_client_and_the_round_goes_on() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_tiny_model_and_pairs(dir.path(), 24);
    let config = write_config(dir.path(), "dpo", "fedavg", ["", "", ""]);
    let work = dir.path().join("work");
    // A `fedpref` that spoils client 0's shard right after dealing the shards.
    let wrapper = dir.path().join("fedpref-spoiling-client-0");
    std::fs::write(
        &wrapper,
        format!(
            "#!/usr/bin/env bash\n{bin} \"$@\" || exit\n\
             if [[ $1 == data && $2 == shards ]]; then echo 'not json' > \"${{@: -1}}/client-0.shard.jsonl\"; fi\n",
            bin = fedpref_bin().display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let output = Command::new("bash")
        .arg(repo_root().join("deploy/shell/federate.sh"))
        .args([&config, &work])
        .env("FEDPREF", &wrapper)
        .env_remove("FEDPREF_PLUGIN_PATH")
        .output()
        .expect("bash starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "federate.sh failed:\n{stderr}");
    assert!(
        stderr.contains("client-0.shard.jsonl")
            && stderr.contains("line 1")
            && stderr.contains("client 0 failed"),
        "{stderr}"
    );
    let records = rounds(&work);
    assert_eq!(records.len(), 2);
    for record in &records {
        let sampled: Vec<u64> = record["sampled"]
            .as_array()
            .expect("sampled")
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        let trained = record["trained"].as_array().expect("trained").len();
        assert_eq!(
            trained,
            sampled.iter().filter(|&&c| c != 0).count(),
            "{record}"
        );
    }
    assert!(work.join("global-final.safetensors").is_file());
}

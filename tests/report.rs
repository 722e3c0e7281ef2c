//! `fedpref report` end to end: a tiny real sweep (`fedpref run` on a tiny random model) is
//! reported; a directory without runs is a usage error (2); `--strict` turns a corrupt run
//! into a failure (1) naming the file, while the default skips it with a warning.

use std::path::Path;

use crate::util::{error_lines, fedpref, write_tiny_model_and_pairs};

/// A tiny model, 16 pairs, and a config for `methods` x FedAvg x seed 0, 2 rounds.
fn tiny_sweep(dir: &Path, methods: &str) -> std::path::PathBuf {
    write_tiny_model_and_pairs(dir, 16);
    let config = dir.join("tiny.toml");
    let text = format!(
        r#"
[experiment]
name = "tiny"
methods = [{methods}]
aggregators = ["fedavg"]
seeds = [0]
output_dir = "{out}"

[model]
path = "{model}"

[data]
path = "{data}"
max_length = 64
max_prompt_length = 32

[federation]
clients = 2
clients_per_round = 2
rounds = 2

[training]
batch_size = 2
local_steps = 2
lr = 1e-2

[lora]
rank = 2
alpha = 4
targets = ["q_proj", "v_proj"]
"#,
        out = dir.join("runs").display(),
        model = dir.join("model").display(),
        data = dir.join("pairs.jsonl").display(),
    );
    std::fs::write(&config, text).expect("write config");
    config
}

#[test]
fn a_tiny_sweep_is_reported_with_tables_and_figures() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = tiny_sweep(dir.path(), r#""dpo", "ktor""#);
    let run = fedpref(&["run", config.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sweep = dir.path().join("runs/tiny");
    let report = fedpref(&["report", sweep.to_str().expect("utf-8 path")]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert!(
        report.stdout.starts_with(
            "| Aggregator | Reward margin (last round): DPO | Reward margin (last round): KTOR |"
        ),
        "{}",
        report.stdout
    );
    assert!(
        !report.stderr.contains("warning"),
        "a clean sweep has nothing to skip: {}",
        report.stderr
    );
    for file in [
        "index.html",
        "index.md",
        "tables/results.tex",
        "tables/rounds.csv",
        "figures/training-fedavg.png",
        "figures/partition.svg",
        "data/steps.parquet",
    ] {
        assert!(
            sweep.join("report").join(file).is_file(),
            "{file} missing; stdout:\n{}",
            report.stdout
        );
    }
    let rounds =
        std::fs::read_to_string(sweep.join("report/tables/rounds.csv")).expect("rounds.csv");
    // A header, then two rounds x (loss, margin) x two methods, plus DPO's accuracy per round.
    let data_rows = rounds.lines().count().saturating_sub(1);
    assert!(data_rows >= 2 * 2 * 2, "{rounds}");
    let index = std::fs::read_to_string(sweep.join("report/index.md")).expect("index.md");
    assert!(
        index.contains("- **Partitioner**: iid (DPO), redistribute (KTOR)"),
        "{index}"
    );
}

#[test]
fn report_exit_codes_and_strict() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir_all(dir.path().join("empty")).expect("mkdir");
    let empty = fedpref(&[
        "report",
        dir.path().join("empty").to_str().expect("utf-8 path"),
    ]);
    assert_eq!(empty.code, 2, "{}", empty.stderr);
    assert!(
        error_lines(&empty)
            .iter()
            .any(|l| l.contains("no run directory found")),
        "{}",
        empty.stderr
    );

    let run = dir.path().join("sweep/dpo-fedavg-s0");
    std::fs::create_dir_all(run.join("metrics")).expect("mkdir");
    std::fs::write(
        run.join("config.toml"),
        "[experiment]\nmethods = [\"dpo\"]\naggregators = [\"fedavg\"]\nseeds = [0]\n",
    )
    .expect("config");
    let row =
        r#"{"round":0,"bytes_down":10,"bytes_up":10,"train":{"loss":0.69,"rewards/margins":0.01}}"#;
    std::fs::write(
        run.join("metrics/rounds.jsonl"),
        format!("{row}\n{{\"round\":1,\"tra"),
    )
    .expect("rounds");
    std::fs::write(run.join("metrics/steps.jsonl"), "").expect("steps");
    let sweep = dir.path().join("sweep");
    let lenient = fedpref(&["report", sweep.to_str().expect("utf-8 path")]);
    assert_eq!(lenient.code, 0, "{}", lenient.stderr);
    assert!(
        lenient.stderr.contains("warning: 2 missing or corrupt"),
        "{}",
        lenient.stderr
    );
    assert!(
        lenient.stderr.contains("manifest.json: missing"),
        "{}",
        lenient.stderr
    );
    assert!(
        lenient
            .stderr
            .contains("rounds.jsonl:2: truncated last line"),
        "{}",
        lenient.stderr
    );
    let strict = fedpref(&["report", "--strict", sweep.to_str().expect("utf-8 path")]);
    assert_eq!(strict.code, 1, "{}", strict.stderr);
    assert!(
        strict.stderr.contains("2 problem(s)") && strict.stderr.contains("rounds.jsonl"),
        "{}",
        strict.stderr
    );
}

#[test]
fn the_training_library_does_not_depend_on_polars_or_plotters() {
    // `report` is a default feature of the `fedpref` package (for the CLI); the library as
    // other crates use it (`default-features = false`) must stay free of the analysis stack.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "fedpref",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(crate::util::repo_root())
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        tree.lines().any(|l| l.starts_with("candle-core ")),
        "not the tree expected:\n{tree}"
    );
    let analysis: Vec<&str> = tree
        .lines()
        .filter(|l| {
            ["polars", "plotters", "fedpref-analysis"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert!(
        analysis.is_empty(),
        "the training library pulls in {analysis:?}"
    );
}

#[test]
fn sweeps_at_several_privacy_settings_are_reported_against_epsilon() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = tiny_sweep(dir.path(), r#""dpo", "kto""#);
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("rounds = 2\n", "rounds = 2\nsampling = \"poisson\"\n")
        + "[privacy]\nmode = \"client\"\nclip_norm = 0.05\n";
    std::fs::write(&config, text).expect("config");
    let parent = dir.path().join("runs/privacy");
    for (name, setting) in [
        ("z1", "privacy.noise_multiplier=1.0"),
        ("z4", "privacy.noise_multiplier=4.0"),
        ("none", "privacy.mode=\"none\""),
    ] {
        let run = fedpref(&[
            "run",
            config.to_str().expect("utf-8 path"),
            "--set",
            &format!("experiment.output_dir={:?}", parent.display().to_string()),
            "--set",
            &format!("experiment.name={name:?}"),
            "--set",
            setting,
        ]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
    }
    let report = fedpref(&["report", "--privacy", parent.to_str().expect("utf-8 path")]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    let table = std::fs::read_to_string(parent.join("report/tables/privacy.md")).expect("table");
    // Rows strongest privacy first, no DP last.
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ε") || l.starts_with("| no DP"))
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[0].contains("z = 4") && rows[1].contains("z = 1") && rows[2].starts_with("| no DP"),
        "{table}"
    );
    assert!(parent.join("report/figures/privacy-curve.svg").is_file());
    assert!(parent.join("report/index.html").is_file());
    // Each run's manifest states its guarantee, and a sweep's own report shows it in its setup.
    let sweep = parent.join("z4");
    let spent: Vec<f64> = std::fs::read_dir(&sweep)
        .expect("the sweep")
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("manifest.json")).ok())
        .map(|bytes| {
            let manifest: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            assert_eq!(manifest["privacy"]["mode"], "client", "{manifest}");
            manifest["privacy"]["epsilon"].as_f64().expect("epsilon")
        })
        .collect();
    assert_eq!(spent.len(), 2, "one manifest per method");
    let own = fedpref(&["report", sweep.to_str().expect("utf-8 path")]);
    assert_eq!(own.code, 0, "{}", own.stderr);
    let index = std::fs::read_to_string(sweep.join("report/index.md")).expect("index.md");
    let line = format!("client-level: ε = {:.3} at δ = 1e-5", spent[0]);
    assert!(index.contains(&line), "{line} in\n{index}");
    let one = fedpref(&[
        "report",
        "--privacy",
        dir.path().join("runs").to_str().expect("utf-8 path"),
    ]);
    assert_eq!(
        one.code, 2,
        "a folder with one sweep is a usage error: {}",
        one.stderr
    );
}

#[test]
fn sweeps_at_several_codec_settings_are_reported_against_megabytes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = tiny_sweep(dir.path(), r#""dpo", "kto""#);
    let parent = dir.path().join("runs/codecs");
    let settings: [(&str, &[&str]); 3] = [
        ("float32", &[]),
        (
            "int8",
            &["compression.uplink=int8", "compression.downlink=int8"],
        ),
        (
            "top-k",
            &["compression.uplink=top-k", "codecs.top-k={fraction = 0.1}"],
        ),
    ];
    for (name, sets) in settings {
        let mut args = vec![
            "run".to_owned(),
            config.to_str().expect("utf-8 path").to_owned(),
            "--set".to_owned(),
            format!("experiment.output_dir={:?}", parent.display().to_string()),
            "--set".to_owned(),
            format!("experiment.name={name:?}"),
        ];
        for set in sets {
            args.extend(["--set".to_owned(), (*set).to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = fedpref(&args);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
    }
    let report = fedpref(&[
        "report",
        "--communication",
        parent.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    let table =
        std::fs::read_to_string(parent.join("report/tables/communication.md")).expect("table");
    // Fewest megabytes first: int8 both ways (about 1.06 bytes a value each way), then top-k
    // up (0.8) with float32 down (4), then float32 both ways (8).
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ↑") || l.starts_with("| float32"))
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[0].contains("↑ int8 · ↓ int8")
            && rows[1].contains("↑ top-k 0.1 · ↓ none")
            && rows[2].starts_with("| float32"),
        "{table}"
    );
    assert!(parent
        .join("report/figures/communication-curve.svg")
        .is_file());
    let index = std::fs::read_to_string(parent.join("report/index.md")).expect("index.md");
    assert!(index.contains("MB up / run"), "{index}");
    // A float32 run encodes nothing: its seconds are a sum over no values, 0.00, not -0.00.
    assert!(!index.contains("| -0.00 |"), "{index}");
}

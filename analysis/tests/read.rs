//! Reading run and sweep directories: frames and their columns, config flattening, resumed
//! runs without duplicated rounds, corrupt files reported (and fatal with `strict`).

use std::io::Write;

use fedpref_analysis::{read, Error, ReadOptions};
use polars::prelude::DataType;

use crate::util::{close, round_lines, step_lines, write_run, write_sweep, RunSpec};

fn floats(frame: &polars::prelude::DataFrame, name: &str) -> Vec<Option<f64>> {
    frame
        .column(name)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .collect()
}

#[test]
fn a_sweep_reads_into_frames_with_identity_and_config_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(
        dir.path(),
        "paper",
        &["dpo", "kto", "ktor"],
        &["fedavg", "fedprox"],
        &[0, 1],
        3,
    );
    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    assert!(sweep.problems.is_empty(), "{:?}", sweep.problems);
    assert_eq!(sweep.name, "paper");
    assert_eq!(sweep.runs.len(), 12, "cache/ is not a run");
    assert_eq!(sweep.rounds.height(), 12 * 3);
    assert_eq!(sweep.steps.height(), 12 * 3 * 2 * 2);
    assert_eq!(sweep.runs_frame.height(), 12);
    assert_eq!(sweep.evals.height(), 0);
    assert_eq!(sweep.eval_items.height(), 0);
    let names: Vec<String> = sweep
        .rounds
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    for expected in [
        "sweep",
        "run",
        "method",
        "aggregator",
        "seed",
        "round",
        "loss",
        "rewards/margins",
        "bytes_up",
        "n_sampled",
        "aggregator/update_norm",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    for expected in [
        "partitioner",
        "model",
        "status",
        "federation.rounds",
        "lora.rank",
        "lora.targets",
        "losses.dpo.beta",
    ] {
        assert!(
            sweep.runs_frame.column(expected).is_ok(),
            "{expected} missing from the runs frame"
        );
    }
    let ktor = sweep
        .runs
        .iter()
        .find(|r| r.name == "ktor-fedprox-s1")
        .unwrap();
    assert_eq!(
        (ktor.method.as_str(), ktor.aggregator.as_str(), ktor.seed),
        ("ktor", "fedprox", 1)
    );
    assert_eq!(ktor.partitioner.as_deref(), Some("redistribute"));
    assert_eq!(ktor.model.as_deref(), Some("tiny.gguf"));
    assert_eq!(
        (ktor.rounds_completed, ktor.rounds_planned),
        (Some(3), Some(3))
    );
    let targets: Vec<Option<&str>> = sweep
        .runs_frame
        .column("lora.targets")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    assert!(targets.iter().all(|t| *t == Some("q_proj,v_proj")));
}

#[test]
fn a_single_run_directory_is_a_sweep_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(
        dir.path(),
        &RunSpec {
            method: "kto",
            aggregator: "fedavg",
            seed: 2,
            rounds: 2,
        },
    );
    let sweep = read(&run, ReadOptions::default()).unwrap();
    assert_eq!(sweep.runs.len(), 1);
    assert_eq!(sweep.name, "kto-fedavg-s2");
    assert_eq!(sweep.rounds.height(), 2);
}

#[test]
fn a_resumed_run_keeps_the_last_row_of_a_repeated_round() {
    let dir = tempfile::tempdir().unwrap();
    let spec = RunSpec {
        method: "dpo",
        aggregator: "fedavg",
        seed: 0,
        rounds: 3,
    };
    let run = write_run(dir.path(), &spec);
    // A killed run wrote round 1 with other values, then resumed and wrote rounds 1 and 2 again.
    let mut rounds = String::new();
    rounds.push_str(&round_lines(&spec, 0)[0]);
    rounds.push('\n');
    rounds.push_str(&round_lines(&spec, 1)[0].replace("\"loss\":", "\"loss\":9.0,\"stale\":"));
    rounds.push('\n');
    for round in 1..3 {
        rounds.push_str(&round_lines(&spec, round)[0]);
        rounds.push('\n');
    }
    std::fs::write(run.join("metrics/rounds.jsonl"), rounds).unwrap();
    let mut steps = std::fs::OpenOptions::new()
        .append(true)
        .open(run.join("metrics/steps.jsonl"))
        .unwrap();
    for line in step_lines(&spec, 2) {
        writeln!(steps, "{line}").unwrap();
    }
    let sweep = read(dir.path(), ReadOptions::default()).unwrap();
    assert!(sweep.problems.is_empty(), "{:?}", sweep.problems);
    let rounds: Vec<Option<i64>> = sweep
        .rounds
        .column("round")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(rounds, vec![Some(0), Some(1), Some(2)]);
    let losses = floats(&sweep.rounds, "loss");
    assert!(
        close(losses[1].unwrap(), 0.7 - 0.11),
        "the stale row's loss 9.0 was dropped: {losses:?}"
    );
    assert_eq!(
        sweep.steps.height(),
        3 * 4,
        "duplicated steps of round 2 kept once"
    );
}

#[test]
fn corrupt_and_missing_files_are_reported_with_their_paths_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(dir.path(), "broken", &["dpo", "kto"], &["fedavg"], &[0], 3);
    let kto = sweep_dir.join("kto-fedavg-s0");
    std::fs::remove_file(kto.join("manifest.json")).unwrap();
    // A kill in the middle of writing round 2's row.
    let rounds_file = kto.join("metrics/rounds.jsonl");
    let text = std::fs::read_to_string(&rounds_file).unwrap();
    let cut = text.trim_end().rfind('\n').unwrap() + 30;
    std::fs::write(&rounds_file, &text[..cut]).unwrap();

    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    let problems: Vec<String> = sweep.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{}: missing", kto.join("manifest.json").display()))),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{}:3: truncated last line", rounds_file.display()))),
        "{problems:#?}"
    );
    // The rest is still read: two rounds of kto, three of dpo; kto's identity from its config.
    assert_eq!(sweep.rounds.height(), 5);
    let kto_run = sweep.runs.iter().find(|r| r.method == "kto").unwrap();
    assert_eq!(
        (kto_run.status.as_deref(), kto_run.partition.is_none()),
        (None, true)
    );

    match read(&sweep_dir, ReadOptions { strict: true }) {
        Err(error @ Error::Strict { .. }) => {
            let message = error.to_string();
            assert!(message.contains("2 problem(s)"), "{message}");
            assert!(
                message.contains(&kto.join("manifest.json").display().to_string()),
                "{message}"
            );
            assert!(
                message.contains(&rounds_file.display().to_string()),
                "{message}"
            );
        }
        other => panic!("expected a strict error, got {other:?}"),
    }
}

#[test]
fn a_directory_without_runs_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("empty/cache")).unwrap();
    let error = read(&dir.path().join("empty"), ReadOptions::default()).unwrap_err();
    assert!(matches!(error, Error::NoRuns { .. }));
    assert!(error
        .to_string()
        .contains(&dir.path().join("empty").display().to_string()));
}

#[test]
fn evaluation_files_are_read_when_present() {
    let dir = tempfile::tempdir().unwrap();
    let run = write_run(
        dir.path(),
        &RunSpec {
            method: "dpo",
            aggregator: "fedavg",
            seed: 0,
            rounds: 2,
        },
    );
    crate::util::append_eval(
        &run,
        0,
        "advbench",
        serde_json::json!({"harmless_rate": 0.5, "n": 4}),
    );
    crate::util::append_eval(
        &run,
        1,
        "advbench",
        serde_json::json!({"harmless_rate": 0.75, "n": 4}),
    );
    let items = [
        r#"{"id": "a1", "score": 1.0, "outcome": "refused", "response": "I cannot"}"#,
        r#"{"id": 2, "score": 0.0, "outcome": "complied"}"#,
    ];
    std::fs::write(run.join("eval/advbench.jsonl"), items.join("\n") + "\n").unwrap();
    let sweep = read(dir.path(), ReadOptions::default()).unwrap();
    assert!(sweep.problems.is_empty(), "{:?}", sweep.problems);
    assert_eq!(sweep.evals.height(), 4, "two rounds x two metrics");
    assert_eq!(sweep.eval_items.height(), 2);
    let ids: Vec<Option<&str>> = sweep
        .eval_items
        .column("id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(ids, vec![Some("2"), Some("a1")]);
    assert!(
        sweep.eval_items.column("response").is_err(),
        "long texts are left out"
    );
    assert_eq!(
        floats(&sweep.eval_items, "score"),
        vec![Some(0.0), Some(1.0)]
    );
}

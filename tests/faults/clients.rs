//! Clients that fail as a loss plugin can make them fail (a NaN loss, a diverged loss, an
//! error, a panic; the `flaky` fixture fails every third evaluation): each is rejected for its
//! round with its reason on record, the round aggregates the others, and the run completes.
//! A plugin that aborts the process fails its run alone: the sweep's other run completes.
//! And two `fedpref run` racing for one run directory: one runs, the other is refused.

use std::time::{Duration, Instant};

use super::{record_counts, spawn, wait, Ending, Experiment, LIMIT};
use crate::util::fixture;

/// A plugin folder holding only the `flaky` fixture (target/fixtures also holds fixtures that
/// would clash with the real plugins).
fn flaky_plugin_dir(ex: &Experiment) -> String {
    let dir = ex.path().join("flaky-plugin");
    std::fs::create_dir_all(&dir).expect("plugin folder");
    let library = fixture("fedpref_fixture_flaky");
    std::fs::copy(&library, dir.join(library.file_name().expect("file name"))).expect("copy");
    dir.display().to_string()
}

fn rounds(run_dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("metrics/rounds.jsonl"))
        .expect("rounds.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect()
}

#[test]
fn failing_clients_are_rejected_and_the_rounds_aggregate_the_others() {
    let ex = Experiment::new();
    let plugins = flaky_plugin_dir(&ex);
    let (mut rejected, mut aggregated, mut runs_complete) = (0, 0, 0);
    let failures = [
        ("nan", "the loss is NaN"),
        ("huge-loss", "the local loss diverged"),
        ("error", "deliberate failure of this client"),
        ("panic", "deliberate panic in this client"),
    ];
    for (failure, reason) in failures {
        let config = ex.config(
            failure,
            r#"["flaky"]"#,
            &format!("\n[losses.flaky]\nfailure = \"{failure}\"\nevery = 3\n"),
        );
        let run = spawn(&["--plugin-dir", &plugins, "run", config.to_str().unwrap()]);
        match wait(run, LIMIT) {
            Ending::Exited(0, _) => runs_complete += 1,
            other => panic!("{failure}: the run ended {other:?}"),
        }
        let rows = rounds(&ex.path().join(failure).join("faults/flaky-fedavg-s1"));
        assert_eq!(rows.len(), 4, "{failure}: every round is on record");
        let reasons: Vec<String> = rows
            .iter()
            .flat_map(|r| r["rejected"].as_array().cloned().unwrap_or_default())
            .map(|c| c["reason"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(!reasons.is_empty(), "{failure}: no client was rejected");
        assert!(
            reasons.iter().all(|r| r.contains(reason)),
            "{failure}: {reasons:?}"
        );
        rejected += reasons.len();
        aggregated += rows.iter().filter(|r| r["skipped"].is_null()).count();
    }
    record_counts(
        "clients",
        &[
            ("failing-client runs", failures.len()),
            ("runs complete", runs_complete),
            ("clients rejected", rejected),
            ("rounds aggregated on the others", aggregated),
        ],
    );
    assert!(
        aggregated >= 3 * failures.len(),
        "{aggregated} rounds aggregated"
    );
}

#[test]
fn a_plugin_that_aborts_the_process_fails_its_run_and_the_sweep_goes_on() {
    let ex = Experiment::new();
    let plugins = flaky_plugin_dir(&ex);
    let config = ex.config(
        "abort",
        r#"["flaky", "dpo"]"#,
        "\n[losses.flaky]\nfailure = \"abort\"\nevery = 1\n",
    );
    let sweep = spawn(&["--plugin-dir", &plugins, "run", config.to_str().unwrap()]);
    let ended = wait(sweep, LIMIT);
    let manifest = |method: &str| -> serde_json::Value {
        let path = ex.run_dir("abort", method).join("manifest.json");
        serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("JSON")
    };
    let (aborted, other) = (manifest("flaky"), manifest("dpo"));
    record_counts(
        "aborts",
        &[
            ("sweeps with an aborting plugin", 1),
            (
                "runs failed alone",
                usize::from(aborted["status"] == "failed"),
            ),
            (
                "other runs complete",
                usize::from(other["status"] == "complete"),
            ),
        ],
    );
    match &ended {
        Ending::Exited(1, stderr) => assert!(
            stderr.contains("1 of 2 runs failed") && stderr.contains("without reporting"),
            "{stderr}"
        ),
        other => panic!("the sweep ended {other:?}"),
    }
    assert_eq!(aborted["status"], "failed", "{aborted}");
    assert!(
        aborted["error"]
            .as_str()
            .unwrap_or_default()
            .contains("SIGABRT"),
        "{aborted}"
    );
    assert_eq!(other["status"], "complete", "{other}");
}

#[test]
fn a_second_run_on_a_busy_directory_is_refused_and_the_first_completes() {
    let ex = Experiment::new();
    let config = ex.config("race", r#"["dpo"]"#, "");
    let config = config.to_str().unwrap();
    // Long enough (12 rounds) that the second starts well before the first ends.
    let run = ["run", config, "--set", "federation.rounds=12"];
    let first = spawn(&run);
    let lock = ex.run_dir("race", "dpo").join(".lock");
    let started = Instant::now();
    while !lock.exists() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = wait(spawn(&run), LIMIT);
    let first = wait(first, LIMIT);
    let refused = match &second {
        Ending::Exited(code, stderr) => {
            *code != 0 && stderr.contains("another fedpref process is using this run directory")
        }
        _ => false,
    };
    record_counts(
        "races",
        &[
            ("concurrent runs on one directory", 2),
            ("refused", usize::from(refused)),
        ],
    );
    assert!(matches!(first, Ending::Exited(0, _)), "first: {first:?}");
    assert!(refused, "second: {second:?}");
    let again = wait(spawn(&run), LIMIT);
    assert!(
        matches!(&again, Ending::Exited(0, stderr) if stderr.contains("already complete")),
        "{again:?}"
    );
}

#[test]
fn a_run_that_cannot_aggregate_its_round_stops_the_sweep_before_any_run_starts() {
    let ex = Experiment::new();
    let config = ex.config("rehearsal", r#"["dpo"]"#, "");
    // Krum needs more than 2f + 2 clients per round; the config samples 2.
    let ended = wait(
        spawn(&[
            "run",
            config.to_str().unwrap(),
            "--set",
            r#"experiment.aggregators=["fedavg", "krum"]"#,
        ]),
        LIMIT,
    );
    match &ended {
        Ending::Exited(2, stderr) => assert!(
            stderr.contains("run dpo-krum-s1 would fail before its first round")
                && stderr.contains("2f + 2"),
            "{stderr}"
        ),
        other => panic!("the sweep ended {other:?}"),
    }
    assert!(
        !ex.run_dir("rehearsal", "dpo").exists(),
        "the FedAvg run before it did not start"
    );
}

#[test]
fn a_run_directory_from_elsewhere_loads_no_plugin_its_config_names() {
    let ex = Experiment::new();
    let plugins = flaky_plugin_dir(&ex);
    let config = ex.config(
        "foreign",
        r#"["flaky"]"#,
        &format!("\n[losses.flaky]\nevery = 1000\n\n[plugins]\ndirs = [{plugins:?}]\n"),
    );
    let first = wait(spawn(&["run", config.to_str().unwrap()]), LIMIT);
    assert!(matches!(first, Ending::Exited(0, _)), "{first:?}");
    // Its saved config names the plugin folder; resuming it must not load code from there
    // (the loss is then unknown) unless the user names the folder again.
    let run_dir = ex.run_dir("foreign", "flaky").display().to_string();
    match wait(spawn(&["run", "--resume", &run_dir]), LIMIT) {
        Ending::Exited(2, stderr) => assert!(stderr.contains("\"flaky\""), "{stderr}"),
        other => panic!("the resume ended {other:?}"),
    }
    let again = wait(
        spawn(&["--plugin-dir", &plugins, "run", "--resume", &run_dir]),
        LIMIT,
    );
    assert!(
        matches!(&again, Ending::Exited(0, stderr) if stderr.contains("already complete")),
        "{again:?}"
    );
}

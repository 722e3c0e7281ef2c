//! SIGKILL at 20 points spread over a two-run sweep (startup, training, evaluation,
//! checkpointing, between runs), half of them killed once more while resuming: every sweep,
//! run again, ends with final adapters equal bit for bit to an uninterrupted sweep's, marked
//! complete, with its last round's evaluation on record.
//!
//! The points are placed by progress, not by time (a loaded machine would shift time-based
//! points past the end): kill k comes once the sweep has written k/20 of the metric rows an
//! uninterrupted sweep writes.

use std::{
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

use super::{final_adapter, record_counts, spawn_quiet, wait, Ending, Experiment, Rng, LIMIT};

const METHODS: [&str; 2] = ["dpo", "kto"];

/// Kills the sweep `child` with SIGKILL if it is still running, and waits until the run it
/// had started in a process of its own has died with it (the kernel kills that one a moment
/// later, and until then it holds its run directory); whether the sweep was running.
fn kill_if_running(mut child: Child, sweep: &Path) -> bool {
    let running = child.try_wait().expect("try_wait").is_none();
    if running {
        child.kill().expect("SIGKILL");
    }
    child.wait().expect("reaped");
    for run in std::fs::read_dir(sweep).into_iter().flatten().flatten() {
        let Ok(lock) = std::fs::File::open(run.path().join(".lock")) else {
            continue;
        };
        let started = Instant::now();
        while lock.try_lock().is_err() && started.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    running
}

/// Rows written so far to the `metrics/*.jsonl` files of every run under `sweep`.
fn metric_rows(sweep: &Path) -> usize {
    let Ok(runs) = std::fs::read_dir(sweep) else {
        return 0;
    };
    runs.filter_map(Result::ok)
        .filter_map(|run| std::fs::read_dir(run.path().join("metrics")).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|file| std::fs::read(file.path()).ok())
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .sum()
}

/// Waits until the sweep under `sweep` has written `rows` metric rows, or `child` has ended.
fn wait_for_rows(child: &mut Child, sweep: &Path, rows: usize) {
    let started = Instant::now();
    while metric_rows(sweep) < rows && started.elapsed() < LIMIT {
        if child.try_wait().expect("try_wait").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn evaluated_last_round(run_dir: &std::path::Path) -> bool {
    std::fs::read_to_string(run_dir.join("metrics/evals.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|row| row["round"] == 3 && row["benchmark"] == "preference-accuracy")
}

#[test]
fn a_sweep_killed_at_twenty_points_resumes_to_the_same_adapters() {
    let ex = Experiment::new();
    let methods = r#"["dpo", "kto"]"#;
    let reference = ex.config("reference", methods, "");
    let started = Instant::now();
    match wait(spawn_quiet(&["run", reference.to_str().unwrap()]), LIMIT) {
        Ending::Exited(0, _) => {}
        other => panic!("the uninterrupted sweep ended {other:?}"),
    }
    let duration = started.elapsed();
    let total_rows = metric_rows(&ex.path().join("reference/faults"));
    let expected: Vec<Vec<u8>> = METHODS
        .iter()
        .map(|m| final_adapter(&ex.run_dir("reference", m)))
        .collect();

    let mut rng = Rng(18);
    let (mut kills, mut landed, mut identical, mut lost) = (0, 0, 0, 0);
    for k in 0..20 {
        let output = format!("kill-{k:02}");
        let config = ex.config(&output, methods, "");
        let config = config.to_str().unwrap();
        let sweep = ex.path().join(&output).join("faults");
        // Once k/20 of the rows are written (k = 0: during startup), a little after.
        let mut child = spawn_quiet(&["run", config]);
        wait_for_rows(&mut child, &sweep, k * total_rows / 20);
        std::thread::sleep(duration.mul_f64(rng.unit() / 40.0));
        kills += 1;
        landed += usize::from(kill_if_running(child, &sweep));
        if k % 2 == 1 {
            // And once more, at a random time of the resumed sweep.
            let child = spawn_quiet(&["run", config]);
            std::thread::sleep(duration.mul_f64(rng.unit() / 2.0));
            kills += 1;
            landed += usize::from(kill_if_running(child, &sweep));
        }
        match wait(spawn_quiet(&["run", config]), LIMIT) {
            Ending::Exited(0, _) => {}
            other => panic!("kill {k}: the resumed sweep ended {other:?}"),
        }
        for (method, want) in METHODS.iter().zip(&expected) {
            let run_dir = ex.run_dir(&output, method);
            let same = final_adapter(&run_dir) == *want && evaluated_last_round(&run_dir);
            identical += usize::from(same);
            lost += usize::from(!same);
        }
    }
    record_counts(
        "kills",
        &[
            ("SIGKILLs sent", kills),
            ("SIGKILLs that landed mid-run", landed),
            ("runs resumed bit-identical", identical),
            ("runs lost", lost),
        ],
    );
    assert_eq!(lost, 0, "runs whose resumed adapter or evaluation differs");
    assert!(
        landed >= 20,
        "only {landed} of {kills} kills landed mid-run"
    );
}

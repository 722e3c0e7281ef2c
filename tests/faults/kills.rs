//! SIGKILL at 20 points spread over a two-run sweep (startup, training, evaluation,
//! checkpointing, between runs), half of them killed once more while resuming: every sweep,
//! run again, ends with final adapters equal bit for bit to an uninterrupted sweep's, marked
//! complete, with its last round's evaluation on record.

use std::{process::Child, time::Instant};

use super::{final_adapter, record_counts, spawn_quiet, wait, Ending, Experiment, Rng, LIMIT};

const METHODS: [&str; 2] = ["dpo", "kto"];

/// Kills `child` with SIGKILL if it is still running; whether it was.
fn kill_if_running(mut child: Child) -> bool {
    let running = child.try_wait().expect("try_wait").is_none();
    if running {
        child.kill().expect("SIGKILL");
    }
    child.wait().expect("reaped");
    running
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
        // Within the k-th of 21 slices of the uninterrupted sweep's time, startup included (the
        // last slice is left out: a kill there may come after the sweep has ended).
        let mut points = vec![duration.mul_f64((k as f64 + rng.unit()) / 21.0)];
        if k % 2 == 1 {
            points.push(duration.mul_f64(rng.unit()));
        }
        for point in points {
            let child = spawn_quiet(&["run", config]);
            std::thread::sleep(point);
            kills += 1;
            landed += usize::from(kill_if_running(child));
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

//! `fedpref bench` and the device switches: a real (tiny) benchmark run, and the errors a
//! CPU-only build gives for CUDA.

use crate::util::{error_lines, fedpref};

#[test]
fn train_step_bench_prints_a_json_report_with_consistent_numbers() {
    // SmolLM2's real shapes, random weights, one short step: the numbers must hang together.
    let run = fedpref(&[
        "bench",
        "train-step",
        "--device",
        "cpu",
        "--batch",
        "1",
        "--seq",
        "8",
        "--warmup",
        "0",
        "--steps",
        "1",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("one JSON line");
    let seconds = report["s_per_step"].as_f64().unwrap();
    let tokens_per_s = report["tokens_per_s"].as_f64().unwrap();
    assert!(seconds > 0.0);
    assert!((tokens_per_s * seconds - 8.0).abs() < 1e-6, "{report}");
    let phases = ["forward_s", "backward_s", "optimizer_s"]
        .iter()
        .map(|k| report[k].as_f64().unwrap())
        .sum::<f64>();
    assert!(
        (phases - seconds).abs() < 1e-3,
        "phases {phases} vs step {seconds}"
    );
    // 460 800 LoRA parameters: r = 8 on q (576 -> 576) and v (576 -> 192) in 30 layers.
    assert_eq!(report["trainable_params"], 460_800);
    assert_eq!(
        report["device"].as_str().unwrap().split(' ').next(),
        Some("cpu")
    );
    assert!(
        report["mfu"].is_null(),
        "no MFU without a GPU peak: {report}"
    );
    assert!(report["peak_rss_mib"].as_f64().unwrap() > 100.0);
}

#[test]
fn a_cpu_build_asked_for_cuda_says_how_to_get_one() {
    let run = fedpref(&["bench", "generate", "--device", "cuda:0"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = error_lines(&run).join("\n");
    assert!(errors.contains("cargo xtask build --cuda"), "{errors}");
    let run = fedpref(&["bench", "train-step", "--dtype", "fp8"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("possible values: f32, bf16"),
        "{}",
        run.stderr
    );
}

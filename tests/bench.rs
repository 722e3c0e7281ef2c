//! `fedpref bench` and the device switches: a real (tiny) benchmark run, and the errors a
//! CPU-only build gives for CUDA.

use fedpref_plugin_api::testing::asset;

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
    assert!(
        report["matmul_gflops_per_s"].as_f64().unwrap() > 0.1,
        "{report}"
    );
}

#[test]
fn preference_step_benches_start_from_the_reference_with_exact_length_rows() {
    let test = "preference_step_benches_start_from_the_reference";
    let Some(gguf) = asset("models/SmolLM2-135M-Instruct.Q4_1.gguf", test) else {
        return;
    };
    let gguf = gguf.to_str().expect("a UTF-8 path");
    // Policy and reference agree at step 0 (LoRA's B starts at zero), so the first loss is
    // DPO's ln 2 and KTO's 1 - sigmoid(0) = 0.5: the precomputed reference log-probs (and
    // KTO's KL ones, from the untimed pass) reached the loss plugin intact.
    for (bench, first_loss) in [("dpo-step", std::f64::consts::LN_2), ("kto-step", 0.5)] {
        let run = fedpref(&[
            "bench",
            bench,
            "--device",
            "cpu",
            "--gguf",
            gguf,
            "--rows",
            "4",
            "--pairs",
            "2",
            "--prompt-tokens",
            "6",
            "--answer-tokens",
            "5",
            "--warmup",
            "0",
            "--steps",
            "2",
            "--json",
        ]);
        assert_eq!(run.code, 0, "{bench}: {}", run.stderr);
        let report: serde_json::Value =
            serde_json::from_str(run.stdout.trim()).expect("one JSON line");
        // 2 pairs = 4 sequences of 6 + 5 tokens.
        assert_eq!(report["tokens_per_step"], 44, "{report}");
        let seconds = report["s_per_step"].as_f64().unwrap();
        let tokens_per_s = report["tokens_per_s"].as_f64().unwrap();
        assert!((tokens_per_s * seconds - 44.0).abs() < 1e-6, "{report}");
        let losses: Vec<f64> = report["losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_f64().unwrap())
            .collect();
        assert_eq!(losses.len(), 2, "{report}");
        assert!((losses[0] - first_loss).abs() < 1e-4, "{bench}: {losses:?}");
        assert!(
            losses[1].is_finite() && losses[1] != losses[0],
            "{losses:?}"
        );
    }
    let run = fedpref(&["bench", "dpo-step"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        error_lines(&run).join("\n").contains("--gguf"),
        "{}",
        run.stderr
    );
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

//! Table values against hand computation: mean over seeds with its bootstrap interval (and
//! sample std), the best method of each row marked, the fallback to training metrics,
//! evaluation summaries and items, the per-round table (mean ± std), and the comparison of two
//! sweeps.

use fedpref_analysis::{
    comparison_table, read, results_table, round_table, table::render, ReadOptions, Source,
};
use serde_json::json;

use crate::util::{append_eval, close, value, write_sweep};

/// Sample std of two values: |a - b| / sqrt(2).
fn std2(a: f64, b: f64) -> f64 {
    (a - b).abs() / 2f64.sqrt()
}

#[test]
fn without_benchmarks_the_table_shows_the_last_rounds_training_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(
        dir.path(),
        "s",
        &["ktor", "dpo", "kto"],
        &["fedprox", "fedavg"],
        &[0, 1],
        3,
    );
    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    let (table, source) = results_table(&sweep);
    assert_eq!(source, Source::Training);
    assert_eq!(
        table.rows,
        ["fedavg", "fedprox"],
        "the paper's aggregator order"
    );
    assert_eq!(
        table.methods,
        ["dpo", "kto", "ktor"],
        "the paper's method order"
    );
    assert_eq!(
        table
            .groups
            .iter()
            .map(|g| g.metric.as_str())
            .collect::<Vec<_>>(),
        ["rewards/margins", "rewards/accuracies"]
    );
    for aggregator in ["fedavg", "fedprox"] {
        for method in ["dpo", "kto", "ktor"] {
            let (a, b) = (
                value("rewards/margins", method, aggregator, 0, 2),
                value("rewards/margins", method, aggregator, 1, 2),
            );
            let cell = table
                .cell(aggregator, "train", "rewards/margins", method)
                .unwrap();
            assert!(
                close(cell.stat.mean, (a + b) / 2.0),
                "{aggregator} {method}: {cell:?}"
            );
            assert!(close(cell.stat.std.unwrap(), std2(a, b)));
            assert_eq!(cell.stat.n, 2);
            // Two seeds with one value each: the resampled mean is a, (a + b) / 2 or b with
            // probability 1/4, 1/2, 1/4, so the 2.5 % tails are the two values themselves.
            // (The quantile interpolates between equal means: equal up to rounding.)
            let interval = cell.interval.unwrap();
            assert!(
                close(interval.low, a) && close(interval.high, b),
                "{interval:?}"
            );
            if method != "dpo" {
                let versus = cell.versus.unwrap();
                // Two positive per-seed differences: exact signed-rank p = 2 * 1/4.
                assert_eq!(versus.paired.wilcoxon.p_value, 0.5);
                assert_eq!(
                    versus.mark, None,
                    "two seeds cannot make a difference significant"
                );
            }
            assert_eq!(cell.best, method == "kto", "{aggregator} {method}");
        }
    }
    // By hand: fedavg, KTO, last round (2): 0.3 + 0.02 * seed + 0.02 -> 0.32, 0.34.
    let kto = table
        .cell("fedavg", "train", "rewards/margins", "kto")
        .unwrap();
    assert!(close(kto.stat.mean, 0.33) && close(kto.stat.std.unwrap(), 0.01 * 2f64.sqrt()));
    let markdown = render::markdown(&table);
    assert!(
        markdown.contains(
            "| fedavg | 0.130 [0.120, 0.140] | **0.330 [0.320, 0.340]** | 0.230 [0.220, 0.240] |"
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains("Reward margin (last round): KTOR"),
        "{markdown}"
    );
    let latex = render::latex(&table);
    assert!(
        latex.contains("$\\mathbf{0.380\\ [0.370, 0.390]}$"),
        "fedprox KTO best: {latex}"
    );
}

#[test]
fn benchmark_summaries_use_each_runs_last_evaluation_and_the_headline_metric() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(dir.path(), "s", &["dpo", "kto"], &["fedavg"], &[0, 1, 2], 2);
    for method in ["dpo", "kto"] {
        for seed in [0u64, 1, 2] {
            let run = sweep_dir.join(format!("{method}-fedavg-s{seed}"));
            append_eval(&run, 0, "advbench", json!({"harmless_rate": 0.0, "n": 10}));
            // The base model, scored without adapter (`fedpref eval --base`): not a result.
            let base = json!({"round": null, "model": "base", "benchmark": "advbench", "metrics": {"harmless_rate": 0.99}});
            std::fs::write(
                run.join("metrics/evals.jsonl"),
                format!(
                    "{}\n{base}\n",
                    std::fs::read_to_string(run.join("metrics/evals.jsonl"))
                        .unwrap()
                        .trim_end()
                ),
            )
            .unwrap();
            let harmless = if method == "dpo" {
                0.5 + 0.1 * seed as f64
            } else {
                0.2
            };
            append_eval(
                &run,
                1,
                "advbench",
                json!({"harmless_rate": harmless, "n": 10}),
            );
            append_eval(
                &run,
                1,
                "mt-bench",
                json!({"mean_score": 4.0 + seed as f64 + if method == "kto" { 1.0 } else { 0.0 }, "failed": 0}),
            );
            // A judge whose every reply was unparsed reports only diagnostics.
            append_eval(
                &run,
                1,
                "vicuna",
                json!({"unparsed": 4, "n": 4, "judge_calls": 4}),
            );
        }
    }
    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    let (table, source) = results_table(&sweep);
    assert_eq!(source, Source::Evals);
    let groups: Vec<(&str, &str)> = table
        .groups
        .iter()
        .map(|g| (g.benchmark.as_str(), g.metric.as_str()))
        .collect();
    assert_eq!(
        groups,
        [
            ("mt-bench", "mean_score"),
            ("vicuna", "(no score)"),
            ("advbench", "harmless_rate")
        ],
        "MT-Bench first, headline metrics only"
    );
    let dpo = table
        .cell("fedavg", "advbench", "harmless_rate", "dpo")
        .unwrap();
    // By hand: 0.5, 0.6, 0.7 -> mean 0.6, sample std 0.1; drawing three seeds gives the
    // lowest (or highest) mean with probability 1/27 > 2.5 %, so the interval spans them.
    assert!(
        close(dpo.stat.mean, 0.6) && close(dpo.stat.std.unwrap(), 0.1) && dpo.stat.n == 3,
        "{dpo:?}"
    );
    assert!(dpo.best);
    let interval = dpo.interval.unwrap();
    assert!(
        close(interval.low, 0.5) && close(interval.high, 0.7),
        "{interval:?}"
    );
    let kto = table
        .cell("fedavg", "advbench", "harmless_rate", "kto")
        .unwrap();
    assert!(close(kto.stat.mean, 0.2) && close(kto.stat.std.unwrap(), 0.0) && !kto.best);
    // MT-Bench: dpo 4, 5, 6 -> 5 ± 1; kto 5, 6, 7 -> 6 ± 1, best.
    let kto_mt = table
        .cell("fedavg", "mt-bench", "mean_score", "kto")
        .unwrap();
    assert!(close(kto_mt.stat.mean, 6.0) && close(kto_mt.stat.std.unwrap(), 1.0) && kto_mt.best);
    let markdown = render::markdown(&table);
    assert!(
        markdown.contains(
            "| fedavg | 5.00 [4.00, 6.00] | **6.00 [5.00, 7.00]** | — | — | **0.600 [0.500, 0.700]** | 0.200 [0.200, 0.200] |"
        ),
        "{markdown}"
    );
    assert!(
        table.caption.contains(
            "a benchmark without item scores has one value per run, resampled over seeds"
        ),
        "{}",
        table.caption
    );
}

#[test]
fn item_scores_stand_in_when_there_is_no_summary() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(dir.path(), "s", &["dpo", "kto"], &["fedavg"], &[0], 1);
    for (method, scores) in [("dpo", [1.0, 0.0, 1.0, 1.0]), ("kto", [0.0, 0.0, 1.0, 0.0])] {
        let lines: Vec<String> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"id": i, "score": s, "outcome": "x"}).to_string())
            .collect();
        std::fs::write(
            sweep_dir.join(format!("{method}-fedavg-s0/eval/advbench.jsonl")),
            lines.join("\n"),
        )
        .unwrap();
    }
    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    let (table, source) = results_table(&sweep);
    assert_eq!(source, Source::Items);
    let dpo = table.cell("fedavg", "advbench", "score", "dpo").unwrap();
    assert!(close(dpo.stat.mean, 0.75) && dpo.stat.std.is_none() && dpo.best);
    assert!(close(
        table
            .cell("fedavg", "advbench", "score", "kto")
            .unwrap()
            .stat
            .mean,
        0.25
    ));
}

#[test]
fn the_round_table_has_a_row_per_round() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(dir.path(), "s", &["dpo", "kto"], &["fedavg"], &[0, 1], 3);
    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    let table = round_table(&sweep);
    assert_eq!(table.rows, ["1", "2", "3"], "1-based rounds");
    assert_eq!(
        table
            .groups
            .iter()
            .map(|g| g.metric.as_str())
            .collect::<Vec<_>>(),
        ["loss", "rewards/margins", "rewards/accuracies"]
    );
    // Round 1, DPO loss: 0.7 - (0.1 + 0.02 * seed) -> 0.6, 0.58.
    let cell = table.cell("1", "train", "loss", "dpo").unwrap();
    assert!(close(cell.stat.mean, 0.59) && close(cell.stat.std.unwrap(), std2(0.6, 0.58)));
    assert!(
        table
            .cells
            .iter()
            .flatten()
            .flatten()
            .flatten()
            .all(|c| !c.best),
        "no best marks per round"
    );
}

#[test]
fn a_comparison_puts_both_sweeps_in_each_group() {
    let dir = tempfile::tempdir().unwrap();
    let a = read(
        &write_sweep(dir.path(), "a", &["dpo", "kto"], &["fedavg"], &[0], 2),
        ReadOptions::default(),
    )
    .unwrap();
    let b_dir = write_sweep(
        &dir.path().join("other"),
        "b",
        &["dpo", "kto"],
        &["fedavg"],
        &[5],
        2,
    );
    let b = read(&b_dir, ReadOptions::default()).unwrap();
    let (table, _) = comparison_table(&a, &b);
    assert_eq!(
        table.method_labels,
        ["DPO (a)", "DPO (b)", "KTO (a)", "KTO (b)"]
    );
    let best: Vec<bool> = (0..4).map(|m| table.cells[0][0][m].unwrap().best).collect();
    // Margins at round 1: kto seed 5 = 0.3 + 0.1 + 0.01 is the largest.
    assert_eq!(best, [false, false, false, true]);
}

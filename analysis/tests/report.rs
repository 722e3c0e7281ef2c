//! Whole reports: the files `fedpref report` promises, a self-contained HTML page, the
//! results table in every format, and the comparison of two sweeps.

use fedpref_analysis::{read, write_comparison, write_report, ReadOptions};
use serde_json::json;

use crate::util::{append_eval, write_sweep};

#[test]
fn a_report_has_tables_figures_and_both_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(
        dir.path(),
        "quick",
        &["dpo", "kto", "ktor"],
        &["fedavg"],
        &[0, 1],
        3,
    );
    std::fs::remove_file(sweep_dir.join("ktor-fedavg-s1/manifest.json")).unwrap();
    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    let out = sweep_dir.join("report");
    let report = write_report(&sweep, &out).unwrap();
    for file in [
        "index.md",
        "index.html",
        "tables/results.csv",
        "tables/results.parquet",
        "tables/results.md",
        "tables/results.tex",
        "tables/rounds.csv",
        "tables/rounds.tex",
        "data/steps.parquet",
        "data/rounds.parquet",
        "figures/training-fedavg.png",
        "figures/training-fedavg.svg",
        "figures/results.png",
        "figures/communication.png",
        "figures/partition.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert!(
        !out.join("figures/harmless-rate.png").exists(),
        "no AdvBench results, no harmless-rate figure"
    );
    let names: Vec<&str> = report.figures.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "training-fedavg",
            "results",
            "differences",
            "communication",
            "partition"
        ]
    );

    let csv = std::fs::read_to_string(out.join("tables/results.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("aggregator,benchmark,metric,method,mean,ci_low,ci_high,std,seeds,questions,n,best,versus,pairs,diff,diff_low,diff_high,p_bootstrap,signed_rank_n,p_signed_rank,signed_rank_method,p_holm,rank_biserial,mark")
    );
    assert_eq!(
        csv.lines().count(),
        1 + 2 * 3,
        "two metrics x three methods"
    );
    assert!(
        csv.contains("fedavg,train,rewards/margins,kto,0.33"),
        "{csv}"
    );

    let md = std::fs::read_to_string(&report.index_md).unwrap();
    for needle in [
        "# fedpref report: quick",
        "- **Partitioner**: iid (DPO, KTO), redistribute (KTOR)",
        "## Results",
        "**0.330 [0.320, 0.340]**",
        "![training-fedavg](figures/training-fedavg.png)",
        "## Skipped files",
        "ktor-fedavg-s1/manifest.json",
    ] {
        assert!(
            md.contains(needle),
            "{needle:?} missing from index.md:\n{md}"
        );
    }
    assert!(report.results_markdown.starts_with("| Aggregator |"));

    let html = std::fs::read_to_string(&report.index_html).unwrap();
    assert_eq!(html.matches("<svg").count(), 5, "every figure inline");
    assert!(
        !html.contains("<img") && !html.contains("<?xml"),
        "self-contained"
    );
    assert!(html.contains("<strong>0.330 [0.320, 0.340]</strong>"));
    assert!(
        html.contains("unknown (no manifest)"),
        "the run without manifest is listed"
    );
}

#[test]
fn advbench_results_get_their_own_figure() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(
        dir.path(),
        "eval",
        &["dpo", "kto"],
        &["fedavg", "fedprox"],
        &[0, 1],
        1,
    );
    for entry in std::fs::read_dir(&sweep_dir).unwrap() {
        let run = entry.unwrap().path();
        if run.join("metrics").is_dir() {
            append_eval(&run, 0, "advbench", json!({"harmless_rate": 0.4, "n": 5}));
            append_eval(
                &run,
                0,
                "preference-accuracy",
                json!({"accuracy": 0.7, "mean_margin": 0.1}),
            );
        }
    }
    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    let report = write_report(&sweep, &sweep_dir.join("report")).unwrap();
    let names: Vec<&str> = report.figures.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.contains(&"harmless-rate") && names.contains(&"results"),
        "{names:?}"
    );
    let svg = std::fs::read_to_string(sweep_dir.join("report/figures/results.svg")).unwrap();
    for label in [
        "AdvBench harmless rate",
        "Preference accuracy",
        "fedavg",
        "fedprox",
        "Aggregator",
    ] {
        assert!(
            svg.contains(&format!(">\n{label}\n</text>")),
            "{label} missing"
        );
    }
}

#[test]
fn two_sweeps_compare_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let a = read(
        &write_sweep(dir.path(), "a", &["dpo", "kto"], &["fedavg"], &[0], 2),
        ReadOptions::default(),
    )
    .unwrap();
    let b = read(
        &write_sweep(
            dir.path(),
            "b",
            &["dpo", "kto", "ktor"],
            &["fedavg"],
            &[0],
            2,
        ),
        ReadOptions::default(),
    )
    .unwrap();
    let out = dir.path().join("cmp");
    let report = write_comparison(&a, &b, &out).unwrap();
    assert!(out.join("tables/compare.tex").is_file());
    assert!(out.join("figures/compare-training-fedavg.png").is_file());
    assert!(out.join("figures/compare-results.svg").is_file());
    let md = std::fs::read_to_string(&report.index_md).unwrap();
    assert!(md.contains("KTOR (b)") && md.contains("DPO (a)"), "{md}");
    assert!(md.contains("| Config key that differs | a | b |\n|:---|:---|:---|\n| losses.ktor.beta | (unset) | 0.1 |"), "{md}");
}

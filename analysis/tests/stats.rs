//! Intervals and tests in the results: item scores resampled over questions and seeds, each
//! method tested against DPO on the same questions and seeds (hand-computed p-values), the
//! long form's test columns, the held-out reward margin, and what the report says about the
//! judge (its check, unparsed items, position consistency).

use fedpref_analysis::{
    read, results_table,
    stat::{Bootstrap, Interval},
    table::{render, Mark},
    write_report, ReadOptions, Source,
};
use serde_json::json;

use crate::util::{append_eval, append_items, close, write_sweep, Item};

/// DPO's score of question `q` under seed `s`; KTO scores one more on every question.
fn dpo_score(q: u32, s: u64) -> f64 {
    3.0 + f64::from(q % 3) + s as f64
}

/// A sweep of DPO and KTO with FedAvg over `seeds`, ten MT-Bench questions each.
fn judged_sweep(root: &std::path::Path, seeds: &[u64]) -> std::path::PathBuf {
    let sweep = write_sweep(root, "judged", &["dpo", "kto"], &["fedavg"], seeds, 1);
    for &seed in seeds {
        for (method, shift) in [("dpo", 0.0), ("kto", 1.0)] {
            let run = sweep.join(format!("{method}-fedavg-s{seed}"));
            let scores: Vec<f64> = (0..10).map(|q| dpo_score(q, seed) + shift).collect();
            let items: Vec<Item> = scores
                .iter()
                .enumerate()
                .map(|(q, s)| Item::scored(q, *s))
                .collect();
            append_items(&run, 0, "mt-bench", &items);
            let mean = scores.iter().sum::<f64>() / 10.0;
            append_eval(
                &run,
                0,
                "mt-bench",
                json!({"mean_score": mean, "n": 10, "scored": 10, "unparsed": 0, "failed": 0,
                       "position_consistency": 0.8 + 0.05 * seed as f64}),
            );
        }
    }
    sweep
}

#[test]
fn item_scores_give_intervals_over_seeds_and_questions() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = read(
        &judged_sweep(dir.path(), &[0, 1, 2]),
        ReadOptions::default(),
    )
    .unwrap();
    let (table, source) = results_table(&sweep);
    assert_eq!(source, Source::Evals);
    let dpo = table
        .cell("fedavg", "mt-bench", "mean_score", "dpo")
        .unwrap();
    // Seed means: 3 + 0.9 + s (q mod 3 sums to 9 over ten questions) -> 3.9, 4.9, 5.9.
    assert!(close(dpo.stat.mean, 4.9), "{dpo:?}");
    assert_eq!((dpo.stat.n, dpo.questions, dpo.values), (3, 10, 30));
    // The interval is the two-level bootstrap of the ten scores of each of the three seeds.
    let clusters: Vec<Vec<f64>> = (0..3u64)
        .map(|s| (0..10).map(|q| dpo_score(q, s)).collect())
        .collect();
    let expected = Bootstrap::default().interval(&clusters).unwrap();
    assert_eq!(dpo.interval, Some(expected));
    assert!(expected.low < 4.9 && 4.9 < expected.high);
    assert!(expected.low >= 3.9 && expected.high <= 5.9);
    assert!(
        dpo.versus.is_none(),
        "the baseline is not compared with itself"
    );
}

#[test]
fn kto_one_point_better_on_every_question_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = read(
        &judged_sweep(dir.path(), &[0, 1, 2]),
        ReadOptions::default(),
    )
    .unwrap();
    let (table, _) = results_table(&sweep);
    let kto = table
        .cell("fedavg", "mt-bench", "mean_score", "kto")
        .unwrap();
    let versus = kto.versus.unwrap();
    let paired = versus.paired;
    // 30 matched (seed, question) pairs, every difference +1.
    assert_eq!(paired.pairs, 30);
    assert!(close(paired.difference, 1.0));
    assert_eq!(
        paired.interval,
        Some(Interval {
            low: 1.0,
            high: 1.0
        })
    );
    assert_eq!(paired.p_bootstrap, Some(2.0 / 10_001.0));
    // Ten per-question differences, all +1 and tied: the sign test, p = 2 / 2^10; Holm over
    // one compared method leaves it as it is.
    assert_eq!(paired.wilcoxon.n, 10);
    assert_eq!(paired.wilcoxon.p_value, 2.0 / 1024.0);
    assert_eq!(paired.wilcoxon.rank_biserial, 1.0);
    assert_eq!(versus.p_adjusted, 2.0 / 1024.0);
    assert_eq!(versus.mark, Some(Mark::Better));
    let markdown = render::markdown(&table);
    assert!(
        markdown.contains("MT-Bench mean score (judge unchecked): KTO"),
        "an unchecked judge is said beside its numbers: {markdown}"
    );
    let row = markdown
        .lines()
        .find(|l| l.starts_with("| fedavg"))
        .unwrap();
    assert!(
        row.starts_with("| fedavg | 4.90 [") && row.ends_with("]**\\* |"),
        "{row}"
    );
    assert!(
        markdown.contains("\\* better, † worse than DPO"),
        "{markdown}"
    );
    assert!(
        table.caption.contains("two-level percentile bootstrap interval (seeds with replacement, then questions within each seed"),
        "{}",
        table.caption
    );
}

#[test]
fn the_long_form_carries_intervals_and_tests() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = judged_sweep(dir.path(), &[0, 1, 2]);
    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    let out = sweep_dir.join("report");
    write_report(&sweep, &out).unwrap();
    let csv = std::fs::read_to_string(out.join("tables/results.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("aggregator,benchmark,metric,method,mean,ci_low,ci_high,std,seeds,questions,n,best,versus,pairs,diff,diff_low,diff_high,p_bootstrap,signed_rank_n,p_signed_rank,signed_rank_method,p_holm,rank_biserial,mark")
    );
    let kto = lines.find(|l| l.contains(",kto,")).unwrap();
    assert!(
        kto.contains(",3,10,30,true,dpo,30,1.0,1.0,1.0,0.00019998000199980003,10,0.001953125,exact,0.001953125,1.0,better"),
        "{kto}"
    );
    let md = std::fs::read_to_string(out.join("index.md")).unwrap();
    for needle in [
        "## Judge",
        "The judge is unchecked for this run",
        "| Benchmark | Questions | Seeds | Against DPO |",
        "| MT-Bench mean score (judge unchecked) | 10 | 3 | KTO better |",
        "| MT-Bench | KTO | 3 | 30 | 0 | 0 | 85.0 % (80.0–90.0 over runs) |",
        "![differences](figures/differences.png)",
    ] {
        assert!(
            md.contains(needle),
            "{needle:?} missing from index.md:\n{md}"
        );
    }
}

#[test]
fn one_seed_gives_intervals_over_questions_only() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = read(&judged_sweep(dir.path(), &[4]), ReadOptions::default()).unwrap();
    let (table, _) = results_table(&sweep);
    assert!(
        table
            .caption
            .contains("one seed, so the interval leaves out the variation between training runs"),
        "{}",
        table.caption
    );
    let dpo = table
        .cell("fedavg", "mt-bench", "mean_score", "dpo")
        .unwrap();
    let scores: Vec<f64> = (0..10).map(|q| dpo_score(q, 4)).collect();
    assert_eq!(dpo.interval, Bootstrap::default().interval(&[scores]));
    assert_eq!(dpo.stat.std, None);
}

#[test]
fn the_judge_check_decides_what_the_report_says() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(dir.path(), "j", &["dpo", "kto"], &["fedavg"], &[0], 1);
    for method in ["dpo", "kto"] {
        let run = sweep_dir.join(format!("{method}-fedavg-s0"));
        let mut items: Vec<Item> = (0..9).map(|q| Item::scored(q, 6.0)).collect();
        items.push(Item::unparsed(9));
        append_items(&run, 0, "vicuna", &items);
        append_eval(
            &run,
            0,
            "vicuna",
            json!({"mean_score": 6.0, "n": 10, "unparsed": 1, "failed": 0, "position_consistency": 0.8}),
        );
        append_eval(&run, 0, "advbench", json!({"harmless_rate": 0.5, "n": 4}));
    }
    let check = |agreement: f64| {
        std::fs::write(
            sweep_dir.join("judge-check.json"),
            json!({"judge": "judge.gguf", "protocol": "pair-v2", "pairs": 40, "agreement": agreement,
                   "agreement_better_first": 0.6, "agreement_better_second": 0.5,
                   "position_consistency": 0.7})
            .to_string(),
        )
        .unwrap();
    };
    let report = |name: &str| {
        let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
        let report = write_report(&sweep, &sweep_dir.join(name)).unwrap();
        std::fs::read_to_string(report.index_md).unwrap()
    };

    check(0.55);
    let low = report("low");
    for needle in [
        "The judge is not trustworthy for this run: it preferred the better answer in only 55.0 % of the checked verdicts, below the threshold of 70.0 %.",
        "| Agreement (both orders) | 55.0 % |",
        "| Pairs checked | 40 |",
        "Vicuna mean score (judge not trustworthy): DPO",
        "| Vicuna | DPO | 1 | 9 | 1 | 0 | 80.0 % |",
        "| AdvBench | DPO | 1 | 4 | 0 | 0 | — |",
    ] {
        assert!(low.contains(needle), "{needle:?} missing from:\n{low}");
    }
    assert!(
        !low.contains("AdvBench harmless rate (judge"),
        "AdvBench is not judged"
    );
    assert_eq!(
        low.matches("The judge is not trustworthy").count(),
        2,
        "in the judge section and above the results"
    );

    check(0.85);
    let good = report("good");
    assert!(good.contains("The judge passed its check"), "{good}");
    assert!(!good.contains("(judge not"), "{good}");

    std::fs::remove_file(sweep_dir.join("judge-check.json")).unwrap();
    let none = report("none");
    assert!(
        none.contains("The judge is unchecked for this run"),
        "{none}"
    );
    assert!(
        none.contains("Vicuna mean score (judge unchecked)"),
        "{none}"
    );
}

#[test]
fn held_out_margins_come_with_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let sweep_dir = write_sweep(dir.path(), "p", &["dpo"], &["fedavg"], &[0], 1);
    let run = sweep_dir.join("dpo-fedavg-s0");
    let margins = [0.5, -0.25, 1.0, 0.25];
    let items: Vec<Item> = margins
        .iter()
        .enumerate()
        .map(|(i, m)| Item {
            detail: format!("margin {m}"),
            ..Item::scored(i, if *m > 0.0 { 1.0 } else { 0.0 })
        })
        .collect();
    append_items(&run, 0, "preference-accuracy", &items);
    append_eval(
        &run,
        0,
        "preference-accuracy",
        json!({"accuracy": 0.75, "mean_margin": 0.375, "n": 4, "failed": 0}),
    );
    let sweep = read(&sweep_dir, ReadOptions::default()).unwrap();
    let (table, _) = results_table(&sweep);
    let labels: Vec<&str> = table.groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["Preference accuracy", "Preference reward margin"]);
    let margin = table
        .cell("fedavg", "preference-accuracy", "mean_margin", "dpo")
        .unwrap();
    // (0.5 - 0.25 + 1 + 0.25) / 4.
    assert!(close(margin.stat.mean, 0.375) && margin.questions == 4);
    let expected = Bootstrap::default().interval(&[margins.to_vec()]);
    assert_eq!(margin.interval, expected);
    let accuracy = table
        .cell("fedavg", "preference-accuracy", "accuracy", "dpo")
        .unwrap();
    assert!(close(accuracy.stat.mean, 0.75) && accuracy.interval.is_some());
}

//! Scoring diagnostics per benchmark and method, over each run's last evaluation of the
//! benchmark (the base model's left out): items scored, unparsed and failed, and the judge's
//! position consistency (the share of verdicts that survive swapping the answers' order).
//!
//! Counts come from the item outcomes of `eval/<benchmark>.jsonl` where the run has them, else
//! from its summary (`scored`, `unparsed`, `failed`, `n`); position consistency only from
//! summaries.

use std::collections::BTreeMap;

use polars::prelude::DataFrame;

use crate::{
    frame::{floats, ints, strings},
    order, Sweep,
};

/// One benchmark and method.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Benchmark name.
    pub benchmark: String,
    /// Method.
    pub method: String,
    /// Runs evaluated.
    pub runs: usize,
    /// Items scored.
    pub scored: usize,
    /// Items whose judge reply could not be read.
    pub unparsed: usize,
    /// Items that failed (no answer, no reply).
    pub failed: usize,
    /// Position consistency over the runs that report it: mean, lowest, highest.
    pub position_consistency: Option<(f64, f64, f64)>,
}

/// Item counts of one run's evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    scored: usize,
    unparsed: usize,
    failed: usize,
}

/// (run, benchmark).
type Key = (String, String);

/// Rows of `frame` at each run's last round of each benchmark, base-model rows left out.
fn latest_rows(frame: &DataFrame) -> Vec<(Key, usize)> {
    let (run, benchmark, model) = (
        strings(frame, "run"),
        strings(frame, "benchmark"),
        strings(frame, "model"),
    );
    let round = ints(frame, "round");
    let key = |i: usize| -> Key {
        (
            run[i].clone().unwrap_or_default(),
            benchmark[i].clone().unwrap_or_default(),
        )
    };
    let rows: Vec<usize> = (0..frame.height())
        .filter(|&i| model[i].as_deref() != Some("base"))
        .collect();
    let mut last: BTreeMap<Key, Option<i64>> = BTreeMap::new();
    for &i in &rows {
        let entry = last.entry(key(i)).or_insert(round[i]);
        *entry = (*entry).max(round[i]);
    }
    rows.into_iter()
        .filter(|&i| last.get(&key(i)) == Some(&round[i]))
        .map(|i| (key(i), i))
        .collect()
}

/// Outcome counts per run and benchmark, from the item files.
fn item_counts(sweep: &Sweep) -> BTreeMap<Key, Counts> {
    let outcome = strings(&sweep.eval_items, "outcome");
    let mut counts: BTreeMap<Key, Counts> = BTreeMap::new();
    for (key, i) in latest_rows(&sweep.eval_items) {
        let entry = counts.entry(key).or_default();
        match outcome[i].as_deref() {
            Some("unparsed") => entry.unparsed += 1,
            Some("failed") => entry.failed += 1,
            _ => entry.scored += 1,
        }
    }
    counts
}

/// Summary metrics per run and benchmark.
fn summaries(sweep: &Sweep) -> BTreeMap<Key, BTreeMap<String, f64>> {
    let (metric, value) = (
        strings(&sweep.evals, "metric"),
        floats(&sweep.evals, "value"),
    );
    let mut summaries: BTreeMap<Key, BTreeMap<String, f64>> = BTreeMap::new();
    for (key, i) in latest_rows(&sweep.evals) {
        if let (Some(metric), Some(value)) = (&metric[i], value[i]) {
            summaries
                .entry(key)
                .or_default()
                .insert(metric.clone(), value);
        }
    }
    summaries
}

/// Counts from a summary: `scored`, else `n` less the unparsed and failed ones.
fn summary_counts(metrics: &BTreeMap<String, f64>) -> Counts {
    let count = |name: &str| metrics.get(name).map(|v| v.max(0.0).round() as usize);
    let (unparsed, failed) = (count("unparsed").unwrap_or(0), count("failed").unwrap_or(0));
    let scored = count("scored")
        .or_else(|| count("n").map(|n| n.saturating_sub(unparsed + failed)))
        .unwrap_or(0);
    Counts {
        scored,
        unparsed,
        failed,
    }
}

/// The diagnostics of `sweep`, in benchmark then method order.
pub fn diagnostics(sweep: &Sweep) -> Vec<Diagnostic> {
    let method_of: BTreeMap<&str, &str> = sweep
        .runs
        .iter()
        .map(|r| (r.name.as_str(), r.method.as_str()))
        .collect();
    let (items, summaries) = (item_counts(sweep), summaries(sweep));
    let mut keys: Vec<&Key> = items.keys().chain(summaries.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut rows: BTreeMap<(String, String), (Diagnostic, Vec<f64>)> = BTreeMap::new();
    for key @ (run, benchmark) in keys {
        let method = method_of.get(run.as_str()).copied().unwrap_or("unknown");
        let summary = summaries.get(key);
        let counts = items
            .get(key)
            .copied()
            .unwrap_or_else(|| summary.map(summary_counts).unwrap_or_default());
        let (row, consistency) = rows
            .entry((benchmark.clone(), method.to_owned()))
            .or_insert_with(|| (empty(benchmark, method), Vec::new()));
        row.runs += 1;
        row.scored += counts.scored;
        row.unparsed += counts.unparsed;
        row.failed += counts.failed;
        consistency.extend(summary.and_then(|s| s.get("position_consistency")));
    }
    let mut rows: Vec<Diagnostic> = rows
        .into_values()
        .map(|(mut row, consistency)| {
            row.position_consistency = spread(&consistency);
            row
        })
        .collect();
    rows.sort_by(|a, b| {
        order::benchmarks(&a.benchmark, &b.benchmark).then(order::methods(&a.method, &b.method))
    });
    rows
}

fn empty(benchmark: &str, method: &str) -> Diagnostic {
    Diagnostic {
        benchmark: benchmark.to_owned(),
        method: method.to_owned(),
        runs: 0,
        scored: 0,
        unparsed: 0,
        failed: 0,
        position_consistency: None,
    }
}

/// Mean, lowest and highest of `values`; `None` when empty.
fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((mean, low, high))
}

/// Header of [`rows`].
pub const COLUMNS: [&str; 7] = [
    "Benchmark",
    "Method",
    "Runs",
    "Scored",
    "Unparsed",
    "Failed",
    "Position consistency",
];

/// The diagnostics as text rows under [`COLUMNS`]: position consistency as a percentage (the
/// range over runs after it when they differ), `—` for benchmarks without it.
pub fn rows(diagnostics: &[Diagnostic]) -> Vec<Vec<String>> {
    diagnostics
        .iter()
        .map(|d| {
            let consistency = match d.position_consistency {
                None => "—".to_owned(),
                Some((mean, low, high)) if high - low < 5e-4 => format!("{:.1} %", 100.0 * mean),
                Some((mean, low, high)) => format!(
                    "{:.1} % ({:.1}–{:.1} over runs)",
                    100.0 * mean,
                    100.0 * low,
                    100.0 * high
                ),
            };
            vec![
                order::benchmark_label(&d.benchmark),
                order::method_label(&d.method),
                d.runs.to_string(),
                d.scored.to_string(),
                d.unparsed.to_string(),
                d.failed.to_string(),
                consistency,
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_fill_in_scored() {
        let metrics: BTreeMap<String, f64> = [
            ("n".to_owned(), 10.0),
            ("unparsed".to_owned(), 3.0),
            ("failed".to_owned(), 1.0),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            summary_counts(&metrics),
            Counts {
                scored: 6,
                unparsed: 3,
                failed: 1
            }
        );
        assert_eq!(summary_counts(&BTreeMap::new()), Counts::default());
    }

    #[test]
    fn consistency_shows_its_range_when_runs_differ() {
        let row = |consistency| Diagnostic {
            position_consistency: consistency,
            ..empty("mt-bench", "dpo")
        };
        let text = rows(&[
            row(Some((0.85, 0.8, 0.9))),
            row(Some((0.5, 0.5, 0.5))),
            row(None),
        ]);
        assert_eq!(text[0][6], "85.0 % (80.0–90.0 over runs)");
        assert_eq!(text[1][6], "50.0 %");
        assert_eq!(text[2][6], "—");
        assert_eq!(text[0][..2], ["MT-Bench", "DPO"]);
    }
}

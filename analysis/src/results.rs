//! The report's two tables, from a [`Sweep`]'s frames:
//!
//! - [`results_table`]: the paper's layout, rows aggregators, per benchmark one column per
//!   method, mean ± std over seeds, best per row marked. Each run contributes its last
//!   evaluated round: the benchmark's headline metric from `metrics/evals.jsonl`, else the
//!   mean item score of `eval/<benchmark>.jsonl`. With no evaluation at all (the quickstart
//!   today) the groups are the last round's training metrics: reward margin and accuracy.
//! - [`round_table`]: training metrics (loss, reward margin, reward accuracy) per round and
//!   method, mean ± std over seeds.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    frame::{floats, has_values, ints, strings},
    order,
    table::{Group, Layout, Observation, Table},
    Sweep,
};

/// Summary metrics that headline a benchmark, in order of preference.
pub const HEADLINE_METRICS: [&str; 6] = [
    "harmless_rate",
    "accuracy",
    "mean_score",
    "win_rate",
    "score",
    "mean",
];

/// Training metrics of the round table and of the main table's fallback.
pub const TRAINING_METRICS: [&str; 3] = ["loss", "rewards/margins", "rewards/accuracies"];

/// Counts and diagnostics a scorer reports beside its score; never a headline.
pub const DIAGNOSTIC_METRICS: [&str; 10] = [
    "n",
    "failed",
    "unparsed",
    "scored",
    "inconsistent",
    "judge_calls",
    "cache_hits",
    "cache_errors",
    "items",
    "invalid_records",
];

/// The metric of a benchmark column whose runs reported no score.
const NO_SCORE: &str = "(no score)";

/// The headline metric among `metrics`: the first of [`HEADLINE_METRICS`], else the first
/// name that is not a diagnostic; `None` when only diagnostics are there (a judge whose every
/// reply was unparsed).
pub fn headline_metric<'a>(metrics: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let metrics: BTreeSet<&str> = metrics.into_iter().collect();
    HEADLINE_METRICS
        .iter()
        .find(|m| metrics.contains(*m))
        .copied()
        .or_else(|| {
            metrics
                .iter()
                .find(|m| !DIAGNOSTIC_METRICS.contains(m))
                .copied()
        })
}

/// Where the main table's numbers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `metrics/evals.jsonl` summaries.
    Evals,
    /// Means of `eval/<benchmark>.jsonl` item scores.
    Items,
    /// The last round's training metrics (no evaluation yet).
    Training,
}

fn methods(sweep: &Sweep) -> Vec<String> {
    order::sorted(sweep.runs.iter().map(|r| r.method.clone()), order::methods)
}

fn aggregators(sweep: &Sweep) -> Vec<String> {
    order::sorted(
        sweep.runs.iter().map(|r| r.aggregator.clone()),
        order::aggregators,
    )
}

fn seeds_phrase(sweep: &Sweep) -> String {
    let seeds: BTreeSet<u64> = sweep.runs.iter().map(|r| r.seed).collect();
    match seeds.len() {
        1 => "one seed, so no ± yet".to_owned(),
        n => format!("mean ± sample std over {n} seeds"),
    }
}

/// Per run (by name), the rows of `frame` at that run's largest `round` (all rows when the
/// frame has no round column).
fn last_round_rows(
    frame: &polars::prelude::DataFrame,
    key: impl Fn(usize) -> String,
) -> Vec<usize> {
    let rounds = ints(frame, "round");
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for (index, round) in rounds.iter().enumerate() {
        let round = round.unwrap_or(-1);
        let entry = last.entry(key(index)).or_insert(round);
        *entry = (*entry).max(round);
    }
    (0..frame.height())
        .filter(|&i| last.get(&key(i)) == Some(&rounds[i].unwrap_or(-1)))
        .collect()
}

/// The results table's column groups and one observation per run and group, and their source.
pub fn results_observations(sweep: &Sweep) -> (Vec<Group>, Vec<Observation>, Source) {
    // The first source with a result for some run: summaries, then item scores, then training.
    if sweep.evals.height() > 0 {
        let (groups, observations) = from_evals(sweep);
        if !observations.is_empty() {
            return (groups, observations, Source::Evals);
        }
    }
    if sweep.eval_items.height() > 0 && has_values(&sweep.eval_items, "score") {
        let (groups, observations) = from_items(sweep);
        if !observations.is_empty() {
            return (groups, observations, Source::Items);
        }
    }
    let (groups, observations) = from_training(sweep);
    (groups, observations, Source::Training)
}

/// The caption of a results table of `sweep` built from `source`.
pub fn results_caption(sweep: &Sweep, source: Source) -> String {
    match source {
        Source::Training => format!(
            "Each run's last round of training metrics (means over that round's local steps; \
             no evaluation results yet); {}; best per row in bold",
            seeds_phrase(sweep)
        ),
        Source::Evals | Source::Items => {
            format!(
                "Each run's last evaluation; {}; best per row and benchmark in bold",
                seeds_phrase(sweep)
            )
        }
    }
}

/// The paper's table and where its numbers came from.
pub fn results_table(sweep: &Sweep) -> (Table, Source) {
    let (groups, observations, source) = results_observations(sweep);
    let layout = Layout {
        title: "Results".into(),
        caption: results_caption(sweep, source),
        row_header: "Aggregator".into(),
        rows: aggregators(sweep),
        groups,
        methods: methods(sweep),
        mark_best: true,
    };
    (Table::build(layout, &observations), source)
}

fn from_evals(sweep: &Sweep) -> (Vec<Group>, Vec<Observation>) {
    let frame = &sweep.evals;
    let (runs, aggregator, method) = (
        strings(frame, "run"),
        strings(frame, "aggregator"),
        strings(frame, "method"),
    );
    let (benchmark, metric, value) = (
        strings(frame, "benchmark"),
        strings(frame, "metric"),
        floats(frame, "value"),
    );
    let text = |v: &[Option<String>], i: usize| v[i].clone().unwrap_or_default();
    let mut metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for i in 0..frame.height() {
        metrics
            .entry(text(&benchmark, i))
            .or_default()
            .insert(text(&metric, i));
    }
    // A benchmark with only diagnostics keeps an empty column, so its absence is visible.
    let headline: BTreeMap<String, String> = metrics
        .iter()
        .map(|(b, ms)| {
            let metric = headline_metric(ms.iter().map(String::as_str)).unwrap_or(NO_SCORE);
            (b.clone(), metric.to_owned())
        })
        .collect();
    let model = strings(frame, "model");
    // The base model's scores (`fedpref eval --base`, round null) are not a run's result.
    let rows = last_round_rows(frame, |i| {
        format!("{}\u{0}{}", text(&runs, i), text(&benchmark, i))
    });
    let observations = rows
        .into_iter()
        .filter(|&i| model[i].as_deref() != Some("base"))
        .filter(|&i| headline.get(&text(&benchmark, i)) == Some(&text(&metric, i)))
        .filter_map(|i| {
            Some(Observation {
                row: text(&aggregator, i),
                benchmark: text(&benchmark, i),
                metric: text(&metric, i),
                method: text(&method, i),
                value: value[i]?,
            })
        })
        .collect();
    let groups = order::sorted(headline.keys().cloned(), order::benchmarks)
        .into_iter()
        .map(|b| {
            let metric = &headline[&b];
            Group::new(
                &b,
                metric,
                format!(
                    "{} {}",
                    order::benchmark_label(&b),
                    order::metric_label(metric)
                ),
            )
        })
        .collect();
    (groups, observations)
}

fn from_items(sweep: &Sweep) -> (Vec<Group>, Vec<Observation>) {
    let frame = &sweep.eval_items;
    let (runs, aggregator, method) = (
        strings(frame, "run"),
        strings(frame, "aggregator"),
        strings(frame, "method"),
    );
    let (benchmark, score) = (strings(frame, "benchmark"), floats(frame, "score"));
    let text = |v: &[Option<String>], i: usize| v[i].clone().unwrap_or_default();
    let model = strings(frame, "model");
    let rows = last_round_rows(frame, |i| {
        format!("{}\u{0}{}", text(&runs, i), text(&benchmark, i))
    });
    let rows = rows
        .into_iter()
        .filter(|&i| model[i].as_deref() != Some("base"));
    let mut scores: BTreeMap<(String, String, String, String), Vec<f64>> = BTreeMap::new();
    for i in rows {
        if let Some(score) = score[i] {
            let key = (
                text(&runs, i),
                text(&aggregator, i),
                text(&method, i),
                text(&benchmark, i),
            );
            scores.entry(key).or_default().push(score);
        }
    }
    let observations = scores
        .into_iter()
        .map(|((_, aggregator, method, benchmark), scores)| Observation {
            row: aggregator,
            benchmark,
            metric: "score".into(),
            method,
            value: scores.iter().sum::<f64>() / scores.len() as f64,
        })
        .collect::<Vec<_>>();
    let groups = order::sorted(
        observations.iter().map(|o| o.benchmark.clone()),
        order::benchmarks,
    )
    .into_iter()
    .map(|b| {
        Group::new(
            &b,
            "score",
            format!("{} mean item score", order::benchmark_label(&b)),
        )
    })
    .collect();
    (groups, observations)
}

fn from_training(sweep: &Sweep) -> (Vec<Group>, Vec<Observation>) {
    let frame = &sweep.rounds;
    let mut metrics: Vec<&str> = ["rewards/margins", "rewards/accuracies"]
        .into_iter()
        .filter(|m| has_values(frame, m))
        .collect();
    if metrics.is_empty() && has_values(frame, "loss") {
        metrics.push("loss");
    }
    let (runs, aggregator, method) = (
        strings(frame, "run"),
        strings(frame, "aggregator"),
        strings(frame, "method"),
    );
    let text = |v: &[Option<String>], i: usize| v[i].clone().unwrap_or_default();
    let rows = last_round_rows(frame, |i| text(&runs, i));
    let mut observations = Vec::new();
    for metric in &metrics {
        let values = floats(frame, metric);
        for &i in &rows {
            if let Some(value) = values[i] {
                observations.push(Observation {
                    row: text(&aggregator, i),
                    benchmark: "train".into(),
                    metric: (*metric).to_owned(),
                    method: text(&method, i),
                    value,
                });
            }
        }
    }
    let groups = metrics
        .iter()
        .map(|m| {
            Group::new(
                "train",
                m,
                format!("{} (last round)", order::metric_label(m)),
            )
        })
        .collect();
    (groups, observations)
}

/// Training metrics per round (1-based in the row labels) and method.
pub fn round_table(sweep: &Sweep) -> Table {
    let frame = &sweep.rounds;
    let metrics: Vec<&str> = TRAINING_METRICS
        .into_iter()
        .filter(|m| has_values(frame, m))
        .collect();
    let aggregators = aggregators(sweep);
    let several = aggregators.len() > 1;
    let label = |aggregator: &str, round: i64| {
        if several {
            format!("{aggregator} · round {}", round + 1)
        } else {
            format!("{}", round + 1)
        }
    };
    let (aggregator, method, rounds) = (
        strings(frame, "aggregator"),
        strings(frame, "method"),
        ints(frame, "round"),
    );
    let mut keys: BTreeSet<(usize, i64)> = BTreeSet::new();
    let mut observations = Vec::new();
    for metric in &metrics {
        let values = floats(frame, metric);
        for i in 0..frame.height() {
            let (Some(agg), Some(round), Some(value)) = (&aggregator[i], rounds[i], values[i])
            else {
                continue;
            };
            keys.insert((
                aggregators
                    .iter()
                    .position(|a| a == agg)
                    .unwrap_or(usize::MAX),
                round,
            ));
            observations.push(Observation {
                row: label(agg, round),
                benchmark: "train".into(),
                metric: (*metric).to_owned(),
                method: method[i].clone().unwrap_or_default(),
                value,
            });
        }
    }
    let rows = keys
        .into_iter()
        .map(|(a, round)| label(aggregators.get(a).map_or("", String::as_str), round))
        .collect();
    let layout = Layout {
        title: "Training metrics per round".into(),
        caption: format!(
            "Means over each round's local steps (rounds 1-based); {}",
            seeds_phrase(sweep)
        ),
        row_header: if several {
            "Aggregator, round".into()
        } else {
            "Round".into()
        },
        rows,
        groups: metrics
            .iter()
            .map(|m| Group::new("train", m, order::metric_label(m)))
            .collect(),
        methods: methods(sweep),
        mark_best: false,
    };
    Table::build(layout, &observations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_prefers_rates_then_the_first_name() {
        assert_eq!(
            headline_metric(["n", "harmless_rate"]),
            Some("harmless_rate")
        );
        assert_eq!(
            headline_metric(["unparsed", "mean_score", "failed"]),
            Some("mean_score")
        );
        assert_eq!(headline_metric(["b", "a"]), Some("a"));
        assert_eq!(headline_metric(["unparsed", "n", "judge_calls"]), None);
        assert_eq!(headline_metric([]), None);
    }
}

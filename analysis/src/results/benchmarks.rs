//! The results table's observations from evaluations: each run's last summary of each
//! benchmark (`metrics/evals.jsonl`), replaced by the item scores behind it
//! (`eval/<benchmark>.jsonl`, one value per question) where the run has them; or, without any
//! summary, the item scores alone.

use std::collections::{BTreeMap, BTreeSet};

use super::{headline_metric, item_column, last_round_rows, EXTRA_METRICS};
use crate::{
    frame::{floats, has_values, ints, strings},
    order,
    table::{Group, Observation},
    Sweep,
};

/// The metric of a benchmark column whose runs reported no score.
const NO_SCORE: &str = "(no score)";

/// (run, benchmark, round) of a run's evaluation.
type EvalKey = (String, String, Option<i64>);

/// Per (run, benchmark, round), the (question, value) pairs of item `column` (base-model rows
/// and items without a value left out: `score` is null unless the item was scored).
fn item_values(sweep: &Sweep, column: &str) -> BTreeMap<EvalKey, Vec<(String, f64)>> {
    let frame = &sweep.eval_items;
    let (run, benchmark, id, model) = (
        strings(frame, "run"),
        strings(frame, "benchmark"),
        strings(frame, "id"),
        strings(frame, "model"),
    );
    let (round, values) = (ints(frame, "round"), floats(frame, column));
    let mut items: BTreeMap<EvalKey, Vec<(String, f64)>> = BTreeMap::new();
    for i in 0..frame.height() {
        let (Some(value), Some(run), Some(benchmark)) = (values[i], &run[i], &benchmark[i]) else {
            continue;
        };
        if model[i].as_deref() == Some("base") {
            continue;
        }
        items
            .entry((run.clone(), benchmark.clone(), round[i]))
            .or_default()
            .push((id[i].clone().unwrap_or_default(), value));
    }
    items
}

/// The group of `metric` of `benchmark`, labelled as the paper names it.
fn group(benchmark: &str, metric: &str) -> Group {
    let label = match metric {
        "score" => format!("{} mean item score", order::benchmark_label(benchmark)),
        "margin" => format!("{} reward margin", order::benchmark_label(benchmark)),
        _ => format!(
            "{} {}",
            order::benchmark_label(benchmark),
            order::metric_label(metric)
        ),
    };
    Group::new(benchmark, metric, label)
}

/// The metrics shown per benchmark: the headline (or [`NO_SCORE`], so that a benchmark whose
/// judge never parsed stays visible), then the extras its runs report.
fn shown_metrics(frame: &polars::prelude::DataFrame) -> BTreeMap<String, Vec<String>> {
    let (benchmark, metric) = (strings(frame, "benchmark"), strings(frame, "metric"));
    let mut metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (b, m) in benchmark.into_iter().zip(metric) {
        metrics
            .entry(b.unwrap_or_default())
            .or_default()
            .insert(m.unwrap_or_default());
    }
    metrics
        .into_iter()
        .map(|(b, ms)| {
            let headline = headline_metric(ms.iter().map(String::as_str)).unwrap_or(NO_SCORE);
            let mut shown = vec![headline.to_owned()];
            shown.extend(
                EXTRA_METRICS
                    .iter()
                    .filter(|m| ms.contains(**m) && **m != headline)
                    .map(|m| (*m).to_owned()),
            );
            (b, shown)
        })
        .collect()
}

/// Groups in benchmark order, each benchmark's metrics in the order given.
fn ordered_groups(shown: &BTreeMap<String, Vec<String>>) -> Vec<Group> {
    order::sorted(shown.keys().cloned(), order::benchmarks)
        .into_iter()
        .flat_map(|b| shown[&b].iter().map(|m| group(&b, m)).collect::<Vec<_>>())
        .collect()
}

pub(super) fn from_evals(sweep: &Sweep) -> (Vec<Group>, Vec<Observation>) {
    let frame = &sweep.evals;
    let text = |name: &str| -> Vec<String> {
        strings(frame, name)
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    };
    let (run, aggregator, method, benchmark, metric, model) = (
        text("run"),
        text("aggregator"),
        text("method"),
        text("benchmark"),
        text("metric"),
        text("model"),
    );
    let (seed, round, value) = (
        ints(frame, "seed"),
        ints(frame, "round"),
        floats(frame, "value"),
    );
    let shown = shown_metrics(frame);
    /// Per evaluation, each question's value.
    type ItemValues = BTreeMap<EvalKey, Vec<(String, f64)>>;
    let columns: BTreeMap<&str, ItemValues> = ["score", "margin"]
        .into_iter()
        .map(|c| (c, item_values(sweep, c)))
        .collect();
    let rows = last_round_rows(frame, |i| format!("{}\u{0}{}", run[i], benchmark[i]));
    let mut observations = Vec::new();
    // The base model's scores (`fedpref eval --base`, round null) are not a run's result.
    for i in rows.into_iter().filter(|&i| model[i] != "base") {
        if !shown
            .get(&benchmark[i])
            .is_some_and(|s| s.contains(&metric[i]))
        {
            continue;
        }
        let Some(summary) = value[i] else { continue };
        let observation = Observation {
            row: aggregator[i].clone(),
            benchmark: benchmark[i].clone(),
            metric: metric[i].clone(),
            method: method[i].clone(),
            seed: seed[i].map_or(0, |s| s.unsigned_abs()),
            question: None,
            value: summary,
        };
        let key = (run[i].clone(), benchmark[i].clone(), round[i]);
        let items = item_column(&metric[i]).and_then(|c| columns[c].get(&key));
        match items {
            Some(items) if !items.is_empty() => {
                observations.extend(items.iter().map(|(question, value)| Observation {
                    question: Some(question.clone()),
                    value: *value,
                    ..observation.clone()
                }));
            }
            _ => observations.push(observation),
        }
    }
    (ordered_groups(&shown), observations)
}

pub(super) fn from_items(sweep: &Sweep) -> (Vec<Group>, Vec<Observation>) {
    let frame = &sweep.eval_items;
    let identity: BTreeMap<String, (String, String, u64)> = sweep
        .runs
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                (r.aggregator.clone(), r.method.clone(), r.seed),
            )
        })
        .collect();
    let mut shown: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut observations = Vec::new();
    for column in ["score", "margin"] {
        if !has_values(frame, column) {
            continue;
        }
        let items = item_values(sweep, column);
        // Each run's last round of each benchmark.
        let mut last: BTreeMap<(String, String), Option<i64>> = BTreeMap::new();
        for (run, benchmark, round) in items.keys() {
            let entry = last
                .entry((run.clone(), benchmark.clone()))
                .or_insert(*round);
            *entry = (*entry).max(*round);
        }
        for ((run, benchmark), round) in last {
            let Some((aggregator, method, seed)) = identity.get(&run) else {
                continue;
            };
            let metrics = shown.entry(benchmark.clone()).or_default();
            if !metrics.iter().any(|m| m == column) {
                metrics.push(column.to_owned());
            }
            for (question, value) in &items[&(run.clone(), benchmark.clone(), round)] {
                observations.push(Observation {
                    row: aggregator.clone(),
                    benchmark: benchmark.clone(),
                    metric: column.to_owned(),
                    method: method.clone(),
                    seed: *seed,
                    question: Some(question.clone()),
                    value: *value,
                });
            }
        }
    }
    (ordered_groups(&shown), observations)
}

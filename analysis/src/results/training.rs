//! Tables of training metrics: the results table's fallback before any evaluation (each run's
//! last round: reward margin and accuracy), and the per-round table (loss, reward margin,
//! reward accuracy per round and method, mean ± std over seeds).

use std::collections::BTreeSet;

use super::{aggregators, last_round_rows, methods, seeds_phrase, TRAINING_METRICS};
use crate::{
    frame::{floats, has_values, ints, strings},
    order,
    table::{Group, Layout, Observation, Table},
    Sweep,
};

/// The identity of each row of `frame`: aggregator, method and seed.
fn identities(frame: &polars::prelude::DataFrame) -> Vec<(String, String, u64)> {
    let (aggregator, method, seed) = (
        strings(frame, "aggregator"),
        strings(frame, "method"),
        ints(frame, "seed"),
    );
    (0..frame.height())
        .map(|i| {
            (
                aggregator[i].clone().unwrap_or_default(),
                method[i].clone().unwrap_or_default(),
                seed[i].map_or(0, i64::unsigned_abs),
            )
        })
        .collect()
}

pub(super) fn from_training(sweep: &Sweep) -> (Vec<Group>, Vec<Observation>) {
    let frame = &sweep.rounds;
    let mut metrics: Vec<&str> = ["rewards/margins", "rewards/accuracies"]
        .into_iter()
        .filter(|m| has_values(frame, m))
        .collect();
    if metrics.is_empty() && has_values(frame, "loss") {
        metrics.push("loss");
    }
    let runs = strings(frame, "run");
    let identity = identities(frame);
    let rows = last_round_rows(frame, |i| runs[i].clone().unwrap_or_default());
    let mut observations = Vec::new();
    for metric in &metrics {
        let values = floats(frame, metric);
        for &i in &rows {
            let (aggregator, method, seed) = &identity[i];
            if let Some(value) = values[i] {
                observations.push(training(aggregator.clone(), metric, method, *seed, value));
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

/// One training metric's value of a run (a value of the whole run: no question).
fn training(row: String, metric: &str, method: &str, seed: u64, value: f64) -> Observation {
    Observation {
        row,
        benchmark: "train".into(),
        metric: metric.to_owned(),
        method: method.to_owned(),
        seed,
        question: None,
        value,
    }
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
    let rounds = ints(frame, "round");
    let identity = identities(frame);
    let mut keys: BTreeSet<(usize, i64)> = BTreeSet::new();
    let mut observations = Vec::new();
    for metric in &metrics {
        let values = floats(frame, metric);
        for i in 0..frame.height() {
            let (aggregator, method, seed) = &identity[i];
            let (Some(round), Some(value)) = (rounds[i], values[i]) else {
                continue;
            };
            let position = aggregators.iter().position(|a| a == aggregator);
            keys.insert((position.unwrap_or(usize::MAX), round));
            observations.push(training(
                label(aggregator, round),
                metric,
                method,
                *seed,
                value,
            ));
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
        intervals: false,
        baseline: None,
    };
    Table::build(layout, &observations)
}

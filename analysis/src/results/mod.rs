//! The report's two tables, from a [`Sweep`]'s frames:
//!
//! - [`results_table`]: the paper's layout, rows aggregators, per benchmark one column per
//!   method. Each run contributes its last evaluated round: the benchmark's headline metric
//!   (and the held-out reward margin beside preference accuracy). Where the run's
//!   `eval/<benchmark>.jsonl` has the item scores behind that metric, every question is a value
//!   of its own, so the cell's interval resamples questions (and seeds); otherwise the run's
//!   summary from `metrics/evals.jsonl` is one value and the interval resamples seeds. Each
//!   method is compared with DPO on the same seeds and questions ([`crate::table::versus`]).
//!   With no evaluation at all (the quickstart today) the groups are the last round's training
//!   metrics: reward margin and accuracy. Benchmarks scored by a judge that is not trusted or
//!   not checked say so in their header ([`crate::judge`]).
//! - [`round_table`]: training metrics (loss, reward margin, reward accuracy) per round and
//!   method, mean ± std over seeds.

mod benchmarks;
mod training;

use std::collections::{BTreeMap, BTreeSet};

pub use self::training::round_table;
use crate::{
    frame::{has_values, ints},
    judge, order,
    table::{Group, Layout, Observation, Table, BASELINE},
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

/// Summary metrics shown beside a benchmark's headline when its runs report them.
pub const EXTRA_METRICS: [&str; 1] = ["mean_margin"];

/// Training metrics of the round table and of the main table's fallback.
pub const TRAINING_METRICS: [&str; 3] = ["loss", "rewards/margins", "rewards/accuracies"];

/// Counts and diagnostics a scorer reports beside its score; never a headline.
pub const DIAGNOSTIC_METRICS: [&str; 11] = [
    "n",
    "failed",
    "unparsed",
    "scored",
    "inconsistent",
    "position_consistency",
    "judge_calls",
    "cache_hits",
    "cache_errors",
    "items",
    "invalid_records",
];

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

/// The item column whose mean over a run's scored items is the summary `metric`: `score` for
/// rates, accuracies and mean scores, `margin` for the mean reward margin; `None` for metrics
/// that are not such a mean (a win rate counts only wins).
pub fn item_column(metric: &str) -> Option<&'static str> {
    match metric {
        "harmless_rate" | "accuracy" | "mean_score" | "score" | "mean" => Some("score"),
        "mean_margin" => Some("margin"),
        _ => None,
    }
}

/// Where the main table's numbers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `metrics/evals.jsonl` summaries (with the item scores behind them where there are).
    Evals,
    /// `eval/<benchmark>.jsonl` item scores.
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

fn seed_count(sweep: &Sweep) -> usize {
    let seeds: BTreeSet<u64> = sweep.runs.iter().map(|r| r.seed).collect();
    seeds.len()
}

fn seeds_phrase(sweep: &Sweep) -> String {
    match seed_count(sweep) {
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

/// The results table's column groups and its observations (per run, or per run and question),
/// and their source.
pub fn results_observations(sweep: &Sweep) -> (Vec<Group>, Vec<Observation>, Source) {
    // The first source with a result for some run: summaries, then item scores, then training.
    if sweep.evals.height() > 0 {
        let (groups, observations) = benchmarks::from_evals(sweep);
        if !observations.is_empty() {
            return (groups, observations, Source::Evals);
        }
    }
    if sweep.eval_items.height() > 0 && has_values(&sweep.eval_items, "score") {
        let (groups, observations) = benchmarks::from_items(sweep);
        if !observations.is_empty() {
            return (groups, observations, Source::Items);
        }
    }
    let (groups, observations) = training::from_training(sweep);
    (groups, observations, Source::Training)
}

/// What a results interval resamples, for `seeds` seeds; `whole_runs` when some values are a
/// run's summary rather than item scores.
fn interval_phrase(seeds: usize, whole_runs: bool) -> String {
    let scheme = if seeds > 1 {
        format!(
            "mean over {seeds} seeds of each run's mean over questions, with its 95 % \
             two-level percentile bootstrap interval (seeds with replacement, then questions \
             within each seed; 10,000 resamples)"
        )
    } else {
        "mean over questions, with its 95 % percentile bootstrap interval over questions \
         (10,000 resamples; one seed, so the interval leaves out the variation between \
         training runs)"
            .to_owned()
    };
    if whole_runs {
        format!("{scheme}; a benchmark without item scores has one value per run, resampled over seeds (no interval with one seed)")
    } else {
        scheme
    }
}

/// The caption of a results table of `sweep` built from `source`; `whole_runs` when some
/// values are a run's summary rather than item scores.
pub fn results_caption(sweep: &Sweep, source: Source, whole_runs: bool) -> String {
    let seeds = seed_count(sweep);
    match source {
        Source::Training => format!(
            "Each run's last round of training metrics (means over that round's local steps; \
             no evaluation results yet): {}; best per row in bold",
            if seeds > 1 {
                format!("mean over {seeds} seeds with its 95 % percentile bootstrap interval over seeds (10,000 resamples; crude with few seeds)")
            } else {
                "one seed, so no interval".to_owned()
            }
        ),
        Source::Evals | Source::Items => format!(
            "Each run's last evaluation: {}; best per row and benchmark in bold",
            interval_phrase(seeds, whole_runs)
        ),
    }
}

/// The paper's table and where its numbers came from.
pub fn results_table(sweep: &Sweep) -> (Table, Source) {
    let (mut groups, observations, source) = results_observations(sweep);
    let status = judge::status(sweep);
    for group in &mut groups {
        if let Some(note) = status.header_note(&group.benchmark) {
            group.label = format!("{} ({note})", group.label);
        }
    }
    let whole_runs =
        source != Source::Training && observations.iter().any(|o| o.question.is_none());
    let layout = Layout {
        title: "Results".into(),
        caption: results_caption(sweep, source, whole_runs),
        row_header: "Aggregator".into(),
        rows: aggregators(sweep),
        groups,
        methods: methods(sweep),
        mark_best: true,
        intervals: true,
        baseline: Some(BASELINE.to_owned()),
    };
    (Table::build(layout, &observations), source)
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
        assert_eq!(
            headline_metric(["unparsed", "n", "judge_calls", "position_consistency"]),
            None
        );
        assert_eq!(headline_metric([]), None);
    }

    #[test]
    fn item_columns_of_means_only() {
        assert_eq!(item_column("harmless_rate"), Some("score"));
        assert_eq!(item_column("mean_margin"), Some("margin"));
        assert_eq!(item_column("win_rate"), None);
    }
}

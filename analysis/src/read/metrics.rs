//! A run's metrics and evaluation files as rows of cells, ready for [`Columns`]:
//! `metrics/steps.jsonl`, `metrics/rounds.jsonl`, `metrics/evals.jsonl` and `eval/*.jsonl`.
//!
//! Flattening: top-level scalars keep their names; the loss plugin's metric maps (`metrics`
//! of a step, `train` of a round) keep their metric names (`rewards/margins`), other maps are
//! prefixed (`aggregator/update_norm`); lists become counts (`n_sampled`).

use std::path::Path;

use serde_json::{Map, Value};

use super::{
    columns::{Cell, Columns},
    jsonl::{int_field, keep_last, read_rows},
    Problem, Run,
};

/// The identity cells every row of a run starts with.
pub fn identity(sweep: &str, run: &Run) -> Vec<(String, Cell)> {
    vec![
        ("sweep".into(), Cell::Str(sweep.to_owned())),
        ("run".into(), Cell::Str(run.name.clone())),
        ("method".into(), Cell::Str(run.method.clone())),
        ("aggregator".into(), Cell::Str(run.aggregator.clone())),
        (
            "seed".into(),
            Cell::Int(i64::try_from(run.seed).unwrap_or(i64::MAX)),
        ),
    ]
}

/// The leading columns of every frame.
pub const IDENTITY: [&str; 5] = ["sweep", "run", "method", "aggregator", "seed"];

/// Flattens one row: `as_is` names the map whose keys become columns unchanged.
fn flatten(row: &Map<String, Value>, as_is: &str) -> Vec<(String, Cell)> {
    let mut cells = Vec::new();
    for (key, value) in row {
        match value {
            Value::Object(map) if key == as_is => {
                for (name, value) in map {
                    let taken =
                        row.contains_key(name) || super::metrics::IDENTITY.contains(&name.as_str());
                    let column = if taken {
                        format!("{key}/{name}")
                    } else {
                        name.clone()
                    };
                    cells.push((column, Cell::from(value)));
                }
            }
            Value::Object(map) => {
                for (name, value) in map {
                    cells.push((format!("{key}/{name}"), Cell::from(value)));
                }
            }
            Value::Array(items) => cells.push((format!("n_{key}"), Cell::Int(items.len() as i64))),
            scalar => cells.push((key.clone(), Cell::from(scalar))),
        }
    }
    cells
}

fn missing(path: &Path, problems: &mut Vec<Problem>) {
    problems.push(Problem::file(
        path,
        "missing; this run contributes no rows from it",
    ));
}

/// Appends `metrics/steps.jsonl` (last row per round, client and step).
pub fn steps(sweep: &str, run: &Run, out: &mut Columns, problems: &mut Vec<Problem>) {
    let path = run.path.join("metrics").join("steps.jsonl");
    let Some(rows) = read_rows(&path, problems) else {
        return missing(&path, problems);
    };
    let rows = keep_last(rows, |r| {
        (
            int_field(r, "round"),
            int_field(r, "client"),
            int_field(r, "step"),
        )
    });
    for (_, row) in rows {
        out.push_row(
            identity(sweep, run)
                .into_iter()
                .chain(flatten(&row, "metrics")),
        );
    }
}

/// Appends `metrics/rounds.jsonl` (last row per round).
pub fn rounds(sweep: &str, run: &Run, out: &mut Columns, problems: &mut Vec<Problem>) {
    let path = run.path.join("metrics").join("rounds.jsonl");
    let Some(rows) = read_rows(&path, problems) else {
        return missing(&path, problems);
    };
    for (_, row) in keep_last(rows, |r| int_field(r, "round")) {
        out.push_row(
            identity(sweep, run)
                .into_iter()
                .chain(flatten(&row, "train")),
        );
    }
}

/// Appends `metrics/evals.jsonl`, one row per metric (last row per round and benchmark):
/// `round`, `model` (`global`, or `base` with a null round), `benchmark`, `metric`, `value`.
/// An absent file means the run has no evaluation yet and is not a problem.
pub fn evals(sweep: &str, run: &Run, out: &mut Columns, problems: &mut Vec<Problem>) {
    let path = run.path.join("metrics").join("evals.jsonl");
    let Some(rows) = read_rows(&path, problems) else {
        return;
    };
    let rows = keep_last(rows, |r| {
        (
            int_field(r, "round"),
            r.get("benchmark")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )
    });
    for (line, row) in rows {
        let (Some(benchmark), Some(Value::Object(metrics))) = (
            row.get("benchmark").and_then(Value::as_str),
            row.get("metrics"),
        ) else {
            problems.push(Problem::line(
                &path,
                line,
                "expected {round, benchmark, metrics: {name: value}}; line skipped",
            ));
            continue;
        };
        for (metric, value) in metrics {
            let Some(value) = value.as_f64() else {
                continue;
            };
            out.push_row(identity(sweep, run).into_iter().chain([
                (
                    "round".into(),
                    row.get("round").map_or(Cell::Null, Cell::from),
                ),
                (
                    "model".into(),
                    row.get("model").map_or(Cell::Null, Cell::from),
                ),
                ("benchmark".into(), Cell::Str(benchmark.to_owned())),
                ("metric".into(), Cell::Str(metric.clone())),
                ("value".into(), Cell::Float(value)),
            ]));
        }
    }
}

/// The held-out reward margin of a preference-accuracy item, which the scorer writes only in
/// its `detail` (`margin 0.25`); `None` for any other detail.
fn detail_margin(detail: &str) -> Option<f64> {
    let margin: f64 = detail.strip_prefix("margin ")?.trim().parse().ok()?;
    margin.is_finite().then_some(margin)
}

/// Appends every `eval/<benchmark>.jsonl` (one row per scored item; last row per round and
/// id): `benchmark`, `id` (as text), `score`, `outcome`, `round` and `model` (`global`, or
/// `base` for the model without adapter), `category`, the item's other numeric fields, and
/// `margin` read from a `detail` of the form `margin <number>`. Long texts (prompt, answer,
/// reference, judge reply) are left out.
pub fn eval_items(sweep: &str, run: &Run, out: &mut Columns, problems: &mut Vec<Problem>) {
    let dir = run.path.join("eval");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    for path in files {
        let benchmark = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(rows) = read_rows(&path, problems) else {
            continue;
        };
        let id_text = |r: &Map<String, Value>| match r.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let rows = keep_last(rows, |r| (int_field(r, "round"), id_text(r)));
        for (line, row) in rows {
            if !row.contains_key("id") {
                problems.push(Problem::line(&path, line, "item has no `id`; line skipped"));
                continue;
            }
            let mut cells = identity(sweep, run);
            cells.push(("benchmark".into(), Cell::Str(benchmark.clone())));
            cells.push(("id".into(), Cell::Str(id_text(&row))));
            cells.push((
                "score".into(),
                row.get("score")
                    .and_then(Value::as_f64)
                    .map_or(Cell::Null, Cell::Float),
            ));
            cells.push((
                "outcome".into(),
                row.get("outcome").map_or(Cell::Null, Cell::from),
            ));
            for (key, value) in &row {
                match (key.as_str(), value) {
                    ("id" | "score" | "outcome" | "benchmark", _) => {}
                    // Short labels are kept; prompts, answers and judge replies are not.
                    ("model" | "category", Value::String(_))
                    | (_, Value::Number(_) | Value::Bool(_)) => {
                        cells.push((key.clone(), Cell::from(value)));
                    }
                    ("detail", Value::String(detail)) if !row.contains_key("margin") => {
                        if let Some(margin) = detail_margin(detail) {
                            cells.push(("margin".into(), Cell::Float(margin)));
                        }
                    }
                    _ => {}
                }
            }
            out.push_row(cells);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_keeps_metric_names_and_prefixes_the_rest() {
        let row: Map<String, Value> = serde_json::from_str(
            r#"{"round": 1, "sampled": [0, 2], "skipped": null, "train": {"loss": 0.5, "round": 7},
                "aggregator": {"update_norm": 0.25}}"#,
        )
        .unwrap();
        let cells = flatten(&row, "train");
        let mut names: Vec<&str> = cells.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            vec![
                "aggregator/update_norm",
                "loss",
                "n_sampled",
                "round",
                "skipped",
                "train/round"
            ]
        );
        assert!(cells.contains(&("n_sampled".into(), Cell::Int(2))));
    }

    #[test]
    fn margins_come_from_the_detail_of_held_out_pairs() {
        assert_eq!(detail_margin("margin -0.125"), Some(-0.125));
        assert_eq!(detail_margin("margin NaN"), None);
        assert_eq!(detail_margin("[[A]] the first answer"), None);
        assert_eq!(detail_margin("no log-ratios for item 3"), None);
    }
}

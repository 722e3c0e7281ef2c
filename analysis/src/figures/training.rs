//! Training curves per aggregator: reward margin, reward accuracy and loss per round, one line
//! per method. Each point is the mean over seeds of the run's mean over the round's local steps
//! (the numbers of the round table); the band is ± 1 std over (seed, client) of each client's
//! mean over its steps. Without step rows, round rows are used (spread over seeds only). In a
//! comparison the second sweep's lines are dashed.

use std::collections::{BTreeMap, BTreeSet};

use plotters::{
    coord::Shift,
    prelude::{DrawingArea, DrawingBackend},
};

use super::{
    draw_title, figure_size, layout,
    legend::{self, Entry, Swatch},
    lines::{self, Line, LinePanel, Point},
    Figure, Palette, Scale,
};
use crate::{
    frame::{floats, has_values, ints, strings},
    order, Stat, Sweep,
};

/// The training curves of one aggregator.
#[derive(Debug, Clone, PartialEq)]
pub struct Training {
    /// The aggregator.
    pub aggregator: String,
    /// One panel per metric.
    pub panels: Vec<LinePanel>,
    /// Methods (and sweeps) with their colours.
    pub legend: Vec<Entry>,
    /// What the points are.
    pub basis: String,
}

const PANEL_IN: (f64, f64) = (3.3, 2.7);

type Key = (String, String, i64); // (aggregator, method, round)

/// Per (aggregator, method, round): each run's mean of `metric` over the round's steps (what
/// the round tables show) and each (run, client)'s mean (the spread the band shows).
#[derive(Debug, Default)]
struct RoundValues {
    runs: Vec<f64>,
    units: Vec<f64>,
}

fn round_values(sweep: &Sweep, metric: &str) -> (BTreeMap<Key, RoundValues>, &'static str) {
    let (frame, per_client) = if has_values(&sweep.steps, metric) {
        (&sweep.steps, true)
    } else {
        (&sweep.rounds, false)
    };
    let values = floats(frame, metric);
    let (aggregator, method, run) = (
        strings(frame, "aggregator"),
        strings(frame, "method"),
        strings(frame, "run"),
    );
    let (round, client) = (ints(frame, "round"), ints(frame, "client"));
    let mut by_run: BTreeMap<(Key, String), Vec<f64>> = BTreeMap::new();
    let mut by_unit: BTreeMap<(Key, String, i64), Vec<f64>> = BTreeMap::new();
    for i in 0..frame.height() {
        let (Some(value), Some(agg), Some(meth), Some(r)) =
            (values[i], &aggregator[i], &method[i], round[i])
        else {
            continue;
        };
        let key = (agg.clone(), meth.clone(), r);
        let run = run[i].clone().unwrap_or_default();
        by_run
            .entry((key.clone(), run.clone()))
            .or_default()
            .push(value);
        by_unit
            .entry((
                key,
                run,
                if per_client {
                    client[i].unwrap_or(-1)
                } else {
                    -1
                },
            ))
            .or_default()
            .push(value);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut out: BTreeMap<Key, RoundValues> = BTreeMap::new();
    for ((key, _), values) in by_run {
        out.entry(key).or_default().runs.push(mean(&values));
    }
    for ((key, _, _), values) in by_unit {
        out.entry(key).or_default().units.push(mean(&values));
    }
    (
        out,
        if per_client {
            "seeds and clients"
        } else {
            "seeds"
        },
    )
}

impl Training {
    /// One figure per aggregator of `sweeps` (one sweep, or two to compare: the second dashed).
    pub fn from_sweeps(sweeps: &[&Sweep], palette: &Palette) -> Vec<Training> {
        let aggregators = order::sorted(
            sweeps
                .iter()
                .flat_map(|s| s.runs.iter().map(|r| r.aggregator.clone())),
            order::aggregators,
        );
        let methods = order::sorted(
            sweeps
                .iter()
                .flat_map(|s| s.runs.iter().map(|r| r.method.clone())),
            order::methods,
        );
        let metrics: Vec<&str> = ["rewards/margins", "rewards/accuracies", "loss"]
            .into_iter()
            .filter(|m| {
                sweeps
                    .iter()
                    .any(|s| has_values(&s.steps, m) || has_values(&s.rounds, m))
            })
            .collect();
        let mut basis = BTreeSet::new();
        let means: Vec<Vec<BTreeMap<Key, RoundValues>>> = sweeps
            .iter()
            .map(|sweep| {
                metrics
                    .iter()
                    .map(|m| {
                        let (means, over) = round_values(sweep, m);
                        basis.insert(over);
                        means
                    })
                    .collect()
            })
            .collect();
        let mut figures = Vec::new();
        for aggregator in &aggregators {
            let mut panels = Vec::new();
            for (metric_index, metric) in metrics.iter().enumerate() {
                let mut panel_lines = Vec::new();
                for (sweep_index, sweep_means) in means.iter().enumerate() {
                    for method in &methods {
                        let points: Vec<Point> = sweep_means[metric_index]
                            .iter()
                            .filter(|((a, m, _), _)| a == aggregator && m == method)
                            .filter_map(|((_, _, round), values)| {
                                let mean = Stat::of(&values.runs)?.mean;
                                let spread = Stat::of(&values.units).and_then(|s| s.std);
                                Some(Point {
                                    x: (*round + 1) as f64,
                                    mean,
                                    band: spread.map(|s| (mean - s, mean + s)),
                                })
                            })
                            .collect();
                        if !points.is_empty() {
                            panel_lines.push(Line {
                                color: palette.color(method),
                                dashed: sweep_index > 0,
                                width_pt: 1.4,
                                points,
                            });
                        }
                    }
                }
                panels.push(LinePanel {
                    title: order::metric_label(metric),
                    x_label: "Round".into(),
                    y_label: y_label(metric),
                    lines: panel_lines,
                    from_zero: false,
                    clamp: (*metric == "rewards/accuracies").then_some((0.0, 1.0)),
                });
            }
            if panels.iter().all(|p| p.lines.is_empty()) {
                continue;
            }
            let mut legend = Vec::new();
            for (sweep_index, sweep) in sweeps.iter().enumerate() {
                for method in methods.iter().filter(|m| {
                    sweep
                        .runs
                        .iter()
                        .any(|r| &r.method == *m && &r.aggregator == aggregator)
                }) {
                    let label = if sweeps.len() > 1 {
                        format!("{} ({})", order::method_label(method), sweep.name)
                    } else {
                        order::method_label(method)
                    };
                    let swatch = if sweep_index > 0 {
                        Swatch::Dashed
                    } else {
                        Swatch::Line
                    };
                    legend.push(Entry {
                        label,
                        color: palette.color(method),
                        swatch,
                    });
                }
            }
            figures.push(Training {
                aggregator: aggregator.clone(),
                panels,
                legend,
                basis: basis.iter().copied().collect::<Vec<_>>().join(" or "),
            });
        }
        figures
    }
}

fn y_label(metric: &str) -> String {
    match metric {
        "loss" => "loss".into(),
        "rewards/margins" => "margin (β · log-ratio)".into(),
        "rewards/accuracies" => "accuracy".into(),
        other => other.to_owned(),
    }
}

impl Figure for Training {
    fn name(&self) -> String {
        format!("training-{}", self.aggregator)
    }

    fn caption(&self) -> String {
        format!(
            "Training metrics per round with {}: mean over seeds of each run's mean over the round's local steps; band ± 1 std over {} (each client's mean over its steps).",
            self.aggregator, self.basis
        )
    }

    fn size_in(&self) -> (f64, f64) {
        figure_size(self.panels.len(), PANEL_IN, &self.legend)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        scale: Scale,
    ) -> Result<(), String> {
        let width = self.size_in().0;
        let areas = layout(area, scale, self.panels.len(), PANEL_IN, &self.legend);
        draw_title(
            &areas.title,
            scale,
            &format!("Training per round ({})", self.aggregator),
        )?;
        for (panel, cell) in self.panels.iter().zip(&areas.panels) {
            lines::draw(cell, scale, panel)?;
        }
        legend::draw(&areas.legend, scale, &self.legend, width)
    }
}

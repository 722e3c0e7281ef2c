//! Communication per round: megabytes the server sent to and received from the round's clients
//! (`bytes_down + bytes_up` of `metrics/rounds.jsonl`), one line per method, a panel per
//! aggregator, mean over seeds.

use std::collections::BTreeMap;

use plotters::{
    coord::Shift,
    prelude::{DrawingArea, DrawingBackend},
};

use super::{
    draw_title, figure_size, layout,
    legend::{self, Entry},
    lines::{self, Line, LinePanel, Point},
    Figure, Palette, Scale,
};
use crate::{
    frame::{floats, ints, strings},
    order, Stat, Sweep,
};

/// The communication figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Communication {
    /// One panel per aggregator.
    pub panels: Vec<LinePanel>,
    /// Methods and colours.
    pub legend: Vec<Entry>,
}

const PANEL_IN: (f64, f64) = (3.3, 2.7);

impl Communication {
    /// From the round rows of `sweep`; `None` when no round recorded bytes.
    pub fn from_sweep(sweep: &Sweep, palette: &Palette) -> Option<Communication> {
        let frame = &sweep.rounds;
        let (down, up) = (floats(frame, "bytes_down"), floats(frame, "bytes_up"));
        let (aggregator, method, round) = (
            strings(frame, "aggregator"),
            strings(frame, "method"),
            ints(frame, "round"),
        );
        let mut values: BTreeMap<(String, String, i64), Vec<f64>> = BTreeMap::new();
        for i in 0..frame.height() {
            let (Some(agg), Some(meth), Some(r)) = (&aggregator[i], &method[i], round[i]) else {
                continue;
            };
            if down[i].is_none() && up[i].is_none() {
                continue;
            }
            let megabytes = (down[i].unwrap_or(0.0) + up[i].unwrap_or(0.0)) / 1e6;
            values
                .entry((agg.clone(), meth.clone(), r))
                .or_default()
                .push(megabytes);
        }
        if values.is_empty() {
            return None;
        }
        let aggregators = order::sorted(values.keys().map(|k| k.0.clone()), order::aggregators);
        let methods = order::sorted(values.keys().map(|k| k.1.clone()), order::methods);
        let panels = aggregators
            .iter()
            .map(|aggregator| LinePanel {
                title: aggregator.clone(),
                x_label: "Round".into(),
                y_label: "MB sent + received".into(),
                lines: methods
                    .iter()
                    .enumerate()
                    .filter_map(|(index, method)| {
                        let points: Vec<Point> = values
                            .iter()
                            .filter(|((a, m, _), _)| a == aggregator && m == method)
                            .filter_map(|((_, _, round), v)| {
                                let stat = Stat::of(v)?;
                                Some(Point {
                                    x: (*round + 1) as f64,
                                    mean: stat.mean,
                                    band: stat.std.map(|s| (stat.mean - s, stat.mean + s)),
                                })
                            })
                            .collect();
                        // Methods usually send the same bytes: earlier lines are wider, so equal lines
                        // show as nested stripes instead of hiding each other.
                        let width_pt = 1.4 * (methods.len() - index) as f64;
                        (!points.is_empty()).then(|| Line {
                            color: palette.color(method),
                            dashed: false,
                            width_pt,
                            points,
                        })
                    })
                    .collect(),
                from_zero: true,
                clamp: Some((0.0, f64::INFINITY)),
            })
            .collect();
        let legend = legend::method_lines(&methods, palette);
        Some(Communication { panels, legend })
    }
}

impl Figure for Communication {
    fn name(&self) -> String {
        "communication".into()
    }

    fn caption(&self) -> String {
        "Megabytes communicated per round (adapter weights down to and up from the sampled clients), mean over seeds; methods that send the same amount show as nested lines.".into()
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
        draw_title(&areas.title, scale, "Communication per round")?;
        for (panel, cell) in self.panels.iter().zip(&areas.panels) {
            lines::draw(cell, scale, panel)?;
        }
        legend::draw(&areas.legend, scale, &self.legend, width)
    }
}

//! Quality against a cost (`fedpref report --privacy`: the ε spent; `--communication`: the
//! megabytes sent): each benchmark's headline against the cost on a log10 axis, one line per
//! method with its 95 % interval as a band, and a setting without the cost (no DP) as a dashed
//! level.

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
use crate::table::Table;

/// What the curve's horizontal axis is.
#[derive(Debug, Clone, PartialEq)]
pub struct CostAxis {
    /// The figure's file name (`privacy-curve`).
    pub name: String,
    /// Its title.
    pub title: String,
    /// The axis label (`log10 epsilon`).
    pub label: String,
    /// Its caption.
    pub caption: String,
}

/// Each benchmark's headline against a cost.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeoffCurve {
    /// One panel per benchmark group.
    pub panels: Vec<LinePanel>,
    /// Methods and colours.
    pub legend: Vec<Entry>,
    /// The horizontal axis.
    pub axis: CostAxis,
}

const PANEL_IN: (f64, f64) = (3.3, 2.7);

impl TradeoffCurve {
    /// From a table with one row per setting and each row's cost (`None`: a setting without
    /// it, drawn as a dashed level); `None` with fewer than two rows that have a cost.
    pub fn from_table(
        table: &Table,
        settings: &[(String, Option<f64>)],
        palette: &Palette,
        axis: CostAxis,
    ) -> Option<TradeoffCurve> {
        let costly: Vec<(&String, f64)> = settings
            .iter()
            .filter_map(|(label, eps)| Some((label, (*eps)?)))
            .collect();
        if costly.len() < 2 {
            return None;
        }
        let xs: Vec<f64> = costly.iter().map(|(_, cost)| cost.log10()).collect();
        let span = (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let baseline = settings
            .iter()
            .find(|(_, eps)| eps.is_none())
            .map(|(l, _)| l);
        let panels = table
            .groups
            .iter()
            .map(|group| {
                let cell = |row: &str, method: &str| {
                    table.cell(row, &group.benchmark, &group.metric, method)
                };
                let mut lines = Vec::new();
                for method in &table.methods {
                    let color = palette.color(method);
                    let points: Vec<Point> = costly
                        .iter()
                        .zip(&xs)
                        .filter_map(|((label, _), &x)| {
                            let cell = cell(label, method)?;
                            Some(Point {
                                x,
                                mean: cell.stat.mean,
                                band: cell.interval.map(|i| (i.low, i.high)),
                            })
                        })
                        .collect();
                    if !points.is_empty() {
                        lines.push(Line {
                            color,
                            dashed: false,
                            width_pt: 1.4,
                            points,
                        });
                    }
                    if let Some(free) = baseline.and_then(|label| cell(label, method)) {
                        let level = |x| Point {
                            x,
                            mean: free.stat.mean,
                            band: None,
                        };
                        lines.push(Line {
                            color,
                            dashed: true,
                            width_pt: 1.0,
                            points: vec![level(span.0), level(span.1)],
                        });
                    }
                }
                LinePanel {
                    title: group.label.clone(),
                    x_label: axis.label.clone(),
                    y_label: group.metric.replace('_', " "),
                    lines,
                    from_zero: false,
                    clamp: None,
                }
            })
            .collect();
        let legend = legend::method_lines(&table.methods, palette);
        Some(TradeoffCurve {
            panels,
            legend,
            axis,
        })
    }
}

impl Figure for TradeoffCurve {
    fn name(&self) -> String {
        self.axis.name.clone()
    }

    fn caption(&self) -> String {
        self.axis.caption.clone()
    }

    fn size_in(&self) -> (f64, f64) {
        figure_size(self.panels.len(), PANEL_IN, &self.legend)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        scale: Scale,
    ) -> std::result::Result<(), String> {
        let width = self.size_in().0;
        let areas = layout(area, scale, self.panels.len(), PANEL_IN, &self.legend);
        draw_title(&areas.title, scale, &self.axis.title)?;
        for (panel, cell) in self.panels.iter().zip(&areas.panels) {
            lines::draw(cell, scale, panel)?;
        }
        legend::draw(&areas.legend, scale, &self.legend, width)
    }
}

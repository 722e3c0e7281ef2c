//! The partition picture: for each distinct client split of a sweep (usually one per
//! partitioner: `iid` for DPO and KTO, `redistribute` for KTOR), the examples each client
//! holds as stacked bars of pairs, desirable and undesirable single answers, from
//! `manifest.json`'s `partition` (the lowest seed's run).

use plotters::{
    chart::ChartBuilder,
    coord::Shift,
    element::Rectangle,
    prelude::{DrawingArea, DrawingBackend},
    style::{Color, RGBColor, TRANSPARENT},
};

use super::{
    draw_title, figure_size, layout,
    legend::{self, Entry, Swatch},
    style::{size, GRID, INK},
    Figure, OrMessage, Scale,
};
use crate::{order, Sweep};

/// Colours of the three kinds of example (ColorBrewer Set2, apart from the method colours).
const KINDS: [(&str, RGBColor); 3] = [
    ("Pairs", RGBColor(141, 160, 203)),
    ("Desirable answers", RGBColor(102, 194, 165)),
    ("Undesirable answers", RGBColor(252, 141, 98)),
];

/// One client split.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Panel title: partitioner, methods and seed.
    pub title: String,
    /// `[pairs, desirable, undesirable]` per client.
    pub clients: Vec<[usize; 3]>,
}

/// The partition figure.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionFigure {
    /// One panel per distinct split.
    pub splits: Vec<Split>,
}

const PANEL_IN: (f64, f64) = (3.3, 2.5);

impl PartitionFigure {
    /// One split per method (its lowest seed, first aggregator in the paper's order), methods
    /// with the same split sharing a panel; `None` when no manifest has a partition.
    pub fn from_sweep(sweep: &Sweep) -> Option<PartitionFigure> {
        let mut runs: Vec<&crate::Run> = sweep
            .runs
            .iter()
            .filter(|r| r.partition.is_some())
            .collect();
        runs.sort_by(|a, b| {
            order::methods(&a.method, &b.method)
                .then(a.seed.cmp(&b.seed))
                .then_with(|| order::aggregators(&a.aggregator, &b.aggregator))
        });
        runs.dedup_by(|later, first| later.method == first.method);
        // (split, its methods, seed) in method order.
        let mut splits: Vec<(Split, Vec<String>, u64)> = Vec::new();
        for run in runs {
            let Some(partition) = &run.partition else {
                continue;
            };
            let label = order::method_label(&run.method);
            let key = Split {
                title: partition.partitioner.clone(),
                clients: partition.clients.clone(),
            };
            match splits.iter_mut().find(|s| s.0 == key) {
                Some(split) => split.1.push(label),
                None => splits.push((key, vec![label], run.seed)),
            }
        }
        if splits.is_empty() {
            return None;
        }
        let splits = splits
            .into_iter()
            .map(|(split, methods, seed)| Split {
                title: format!("{}: {} (seed {seed})", split.title, methods.join(", ")),
                ..split
            })
            .collect();
        Some(PartitionFigure { splits })
    }

    fn legend() -> Vec<Entry> {
        KINDS
            .iter()
            .map(|(label, color)| Entry {
                label: (*label).to_owned(),
                color: *color,
                swatch: Swatch::Box,
            })
            .collect()
    }
}

impl Figure for PartitionFigure {
    fn name(&self) -> String {
        "partition".into()
    }

    fn caption(&self) -> String {
        "Examples per client: pairs, desirable and undesirable single answers (label balance), from each run's manifest.".into()
    }

    fn size_in(&self) -> (f64, f64) {
        figure_size(self.splits.len(), PANEL_IN, &Self::legend())
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        scale: Scale,
    ) -> Result<(), String> {
        let width = self.size_in().0;
        let legend_entries = Self::legend();
        let areas = layout(area, scale, self.splits.len(), PANEL_IN, &legend_entries);
        draw_title(&areas.title, scale, "Partition of the training data")?;
        for (split, cell) in self.splits.iter().zip(&areas.panels) {
            draw_split(cell, scale, split)?;
        }
        legend::draw(&areas.legend, scale, &legend_entries, width)
    }
}

fn draw_split<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    split: &Split,
) -> Result<(), String> {
    let clients = split.clients.len().max(1);
    let highest = split
        .clients
        .iter()
        .map(|c| c.iter().sum::<usize>() as u64)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(scale.px(5.0))
        .margin_right(scale.px(10.0))
        .caption(&split.title, scale.font(size::PANEL_TITLE))
        .x_label_area_size(scale.px(26.0))
        .y_label_area_size(scale.px(super::lines::y_label_area_pt(0.0, highest * 1.1, 0)))
        .build_cartesian_2d(-0.5..clients as f64 - 0.5, 0.0..highest * 1.1)
        .msg()?;
    let x_ticks = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 && *x >= 0.0 {
            format!("{}", x.round() as i64 + 1)
        } else {
            String::new()
        }
    };
    let y_ticks = |y: &f64| {
        if (y - y.round()).abs() < 1e-9 {
            format!("{}", y.round() as i64)
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(clients.clamp(2, 12))
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&y_ticks)
        .y_labels(6)
        .x_desc("Client")
        .y_desc("pairs or single answers")
        .label_style(scale.font(size::TICK))
        .axis_desc_style(scale.font(size::AXIS))
        .bold_line_style(GRID.stroke_width(scale.upx(0.5)))
        .light_line_style(TRANSPARENT)
        .axis_style(INK.stroke_width(scale.upx(0.6)))
        .set_all_tick_mark_size(scale.px(2.5))
        .draw()
        .msg()?;
    for (client, counts) in split.clients.iter().enumerate() {
        let x = client as f64;
        let mut bottom = 0.0;
        for (count, (_, color)) in counts.iter().zip(KINDS) {
            if *count == 0 {
                continue;
            }
            let top = bottom + *count as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.35, bottom), (x + 0.35, top)],
                    color.filled(),
                )))
                .msg()?;
            bottom = top;
        }
    }
    Ok(())
}

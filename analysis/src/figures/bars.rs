//! Grouped bars: a panel per column group of a [`Table`] (a benchmark metric), aggregators
//! along the x axis, one bar per method in each, error bars the cell's 95 % bootstrap interval
//! (± 1 std for a table without intervals), and the cell's significance mark (`*`, `†`) above
//! its bar. Used for the results table (`results`), AdvBench's harmless rate alone
//! (`harmless-rate`) and the differences from the baseline ([`super::differences`]).

use plotters::{
    chart::{ChartBuilder, ChartContext, LabelAreaPosition},
    coord::{cartesian::Cartesian2d, types::RangedCoordf64, Shift},
    element::{PathElement, Rectangle, Text},
    prelude::{DrawingArea, DrawingBackend},
    style::{
        text_anchor::{HPos, Pos, VPos},
        Color, RGBColor, TRANSPARENT,
    },
};

use super::{
    draw_title, figure_size, layout,
    legend::{self, Entry, Swatch},
    lines::{padded_range, tick_decimals, tick_label, y_label_area_pt},
    style::{size, GRID, INK},
    Figure, OrMessage, Scale,
};
use crate::{
    order,
    table::{Cell, Mark, Table},
};

/// One bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Its height.
    pub value: f64,
    /// The error bar's ends, if any.
    pub range: Option<(f64, f64)>,
    /// Its significance mark, drawn above it.
    pub mark: Option<Mark>,
}

impl Bar {
    /// A cell's bar: its mean, its interval (else ± 1 std) and its mark.
    pub fn of(cell: &Cell) -> Bar {
        let range = match (cell.interval, cell.stat.std) {
            (Some(interval), _) => Some((interval.low, interval.high)),
            (None, Some(std)) => Some((cell.stat.mean - std, cell.stat.mean + std)),
            (None, None) => None,
        };
        Bar {
            value: cell.stat.mean,
            range,
            mark: cell.mark(),
        }
    }

    /// The bar's lowest and highest point, error bar and zero included.
    fn extent(&self) -> [f64; 2] {
        let (low, high) = self.range.unwrap_or((self.value, self.value));
        [low.min(self.value), high.max(self.value)]
    }
}

/// Bars of one method across the categories.
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    /// Its colour.
    pub color: RGBColor,
    /// One value per category.
    pub values: Vec<Option<Bar>>,
}

/// One panel of grouped bars.
#[derive(Debug, Clone, PartialEq)]
pub struct BarPanel {
    /// Title above the panel.
    pub title: String,
    /// y axis description.
    pub y_label: String,
    /// x axis description.
    pub x_label: String,
    /// Groups along the x axis.
    pub categories: Vec<String>,
    /// One series per method.
    pub series: Vec<BarSeries>,
    /// Values are shares: the axis spans 0 to 1.
    pub share: bool,
}

/// A figure of grouped-bar panels.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// File stem.
    pub name: String,
    /// Figure title.
    pub title: String,
    /// Caption for the report.
    pub caption: String,
    /// The panels.
    pub panels: Vec<BarPanel>,
    /// Methods and colours.
    pub legend: Vec<Entry>,
}

const PANEL_IN: (f64, f64) = (3.3, 2.7);

fn is_share(metric: &str) -> bool {
    ["rate", "accuracy", "accuracies"]
        .iter()
        .any(|w| metric.contains(w))
}

impl Bars {
    /// Every column group of `table` (only those `keep` accepts) as a panel.
    /// `color` gives each method key its colour.
    pub fn from_table(
        table: &Table,
        color: &dyn Fn(&str) -> RGBColor,
        name: &str,
        title: &str,
        keep: impl Fn(&str, &str) -> bool,
    ) -> Option<Bars> {
        let mut panels = Vec::new();
        for (group_index, group) in table.groups.iter().enumerate() {
            let empty = table
                .cells
                .iter()
                .all(|row| row[group_index].iter().all(Option::is_none));
            if empty || !keep(&group.benchmark, &group.metric) {
                continue;
            }
            let series = table
                .methods
                .iter()
                .enumerate()
                .map(|(method_index, method)| BarSeries {
                    color: color(method),
                    values: table
                        .cells
                        .iter()
                        .map(|row| row[group_index][method_index].as_ref().map(Bar::of))
                        .collect(),
                })
                .collect();
            let values_are_shares = table
                .cells
                .iter()
                .flat_map(|row| row[group_index].iter().flatten())
                .all(|c| (0.0..=1.0).contains(&c.stat.mean));
            panels.push(BarPanel {
                title: group.label.clone(),
                y_label: order::metric_label(&group.metric),
                x_label: table.row_header.clone(),
                categories: table.rows.clone(),
                series,
                share: is_share(&group.metric) && values_are_shares,
            });
        }
        if panels.is_empty() {
            return None;
        }
        let intervals = table
            .cells
            .iter()
            .flatten()
            .flatten()
            .flatten()
            .any(|c| c.interval.is_some());
        let caption = if intervals {
            format!(
                "Bars: mean over seeds of each run's mean over questions; error bars: 95 % \
                 bootstrap interval, as in the results table{}.",
                marks_phrase(table)
            )
        } else {
            "Bars: mean over seeds; error bars: ± 1 std (none with one seed).".to_owned()
        };
        Some(Bars {
            name: name.to_owned(),
            title: title.to_owned(),
            caption,
            panels,
            legend: legend_entries(table, color, |_| true),
        })
    }
}

/// What the marks above bars mean, when `table` compared methods with a baseline.
pub fn marks_phrase(table: &Table) -> String {
    table.baseline.as_deref().map_or(String::new(), |b| {
        format!(
            "; * above a bar: significantly better than {0}, †: worse (signed-rank test, Holm-corrected)",
            order::method_label(b)
        )
    })
}

/// Legend entries of `table`'s methods that `keep` accepts.
pub fn legend_entries(
    table: &Table,
    color: &dyn Fn(&str) -> RGBColor,
    keep: impl Fn(&str) -> bool,
) -> Vec<Entry> {
    table
        .methods
        .iter()
        .zip(&table.method_labels)
        .filter(|(method, _)| keep(method))
        .map(|(method, label)| Entry {
            label: label.clone(),
            color: color(method),
            swatch: Swatch::Box,
        })
        .collect()
}

impl Figure for Bars {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn caption(&self) -> String {
        self.caption.clone()
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
        draw_title(&areas.title, scale, &self.title)?;
        for (panel, cell) in self.panels.iter().zip(&areas.panels) {
            draw_panel(cell, scale, panel)?;
        }
        legend::draw(&areas.legend, scale, &self.legend, width)
    }
}

/// The y range of `panel` before room for labels: 0 to 1.05 for shares, else padded around
/// the bars and their error bars, from zero when nothing is negative.
fn y_range(panel: &BarPanel) -> (f64, f64) {
    if panel.share {
        return (0.0, 1.05);
    }
    let bars = panel.series.iter().flat_map(|s| s.values.iter().flatten());
    let extent: Vec<f64> = bars.flat_map(Bar::extent).chain([0.0]).collect();
    let (low, high) = padded_range(extent.iter().copied(), 0.08);
    let low = if extent.iter().all(|v| *v >= 0.0) {
        0.0
    } else {
        low
    };
    (low, high)
}

/// The text over a bar: its value when values fit, and its mark.
fn label_text(bar: &Bar, with_value: bool) -> String {
    let mark = bar.mark.map_or("", Mark::symbol);
    if with_value {
        let value = tick_label(bar.value, crate::stat::decimals_for(bar.value));
        format!("{value}{mark}")
    } else {
        mark.to_owned()
    }
}

/// Whether values fit over the bars: the widest label at most as wide as its bar, estimated
/// before the chart exists so that the axis can make room.
fn values_fit(area_px: u32, scale: Scale, panel: &BarPanel, (y_min, y_max): (f64, f64)) -> bool {
    let widest = panel
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .map(|b| label_text(b, true).chars().count())
        .max()
        .unwrap_or(0);
    let decimals = tick_decimals(y_max - y_min);
    let plot_px =
        f64::from(area_px) - f64::from(scale.px(15.0 + y_label_area_pt(y_min, y_max, decimals)));
    let categories = panel.categories.len().max(1) as f64;
    let bar_px = plot_px / categories * 0.8 / panel.series.len().max(1) as f64;
    widest > 0 && (widest as f64 * size::TICK * 0.9 * 0.62 * scale.px_per_pt) <= bar_px
}

/// Draws one panel of grouped bars.
///
/// # Errors
/// The backend's message.
pub fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    panel: &BarPanel,
) -> Result<(), String> {
    let (y_min, y_max) = y_range(panel);
    // Values over the bars when they fit (a zero bar is otherwise invisible); marks always.
    let values = values_fit(area.dim_in_pixel().0, scale, panel, (y_min, y_max));
    let marks = panel
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .any(|b| b.mark.is_some());
    let (y_min, y_max) = if values || marks {
        let room = (y_max - y_min) * 0.1;
        (
            if y_min < 0.0 { y_min - room } else { y_min },
            if y_max > 0.0 { y_max + room } else { y_max },
        )
    } else {
        (y_min, y_max)
    };
    let categories = panel.categories.len().max(1);
    let decimals = tick_decimals(y_max - y_min);
    let mut chart = ChartBuilder::on(area)
        .margin(scale.px(5.0))
        .margin_right(scale.px(10.0))
        .caption(&panel.title, scale.font(size::PANEL_TITLE))
        .x_label_area_size(scale.px(26.0))
        .y_label_area_size(scale.px(y_label_area_pt(y_min, y_max, decimals)))
        .build_cartesian_2d(0.0..categories as f64, y_min..y_max)
        .msg()?;
    let no_ticks = |_: &f64| String::new();
    let y_ticks = |y: &f64| tick_label(*y, decimals);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2)
        .x_label_formatter(&no_ticks)
        .y_label_formatter(&y_ticks)
        .y_labels(6)
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .label_style(scale.font(size::TICK))
        .axis_desc_style(scale.font(size::AXIS))
        .bold_line_style(GRID.stroke_width(scale.upx(0.5)))
        .light_line_style(TRANSPARENT)
        .axis_style(INK.stroke_width(scale.upx(0.6)))
        .set_tick_mark_size(LabelAreaPosition::Left, scale.px(2.5))
        .set_tick_mark_size(LabelAreaPosition::Bottom, 0)
        .draw()
        .msg()?;
    if y_min < 0.0 {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (categories as f64, 0.0)],
                INK.stroke_width(scale.upx(0.6)),
            )))
            .msg()?;
    }
    let width = 0.8 / panel.series.len().max(1) as f64;
    for (series_index, series) in panel.series.iter().enumerate() {
        for (category, bar) in series.values.iter().enumerate() {
            let Some(bar) = bar else { continue };
            let x0 = category as f64 + 0.1 + series_index as f64 * width;
            draw_bar(&chart, scale, bar, series.color, (x0, width))?;
        }
    }
    let base = area.get_base_pixel();
    let label_font = scale.font(size::TICK * 0.9);
    for (series_index, series) in panel.series.iter().enumerate() {
        for (category, bar) in series.values.iter().enumerate() {
            let Some(bar) = bar else { continue };
            let text = label_text(bar, values);
            if text.is_empty() {
                continue;
            }
            let center = category as f64 + 0.1 + (series_index as f64 + 0.45) * width;
            let [low, high] = bar.extent();
            let (y, anchor, shift) = if bar.value >= 0.0 {
                (high, VPos::Bottom, -scale.px(2.0))
            } else {
                (low, VPos::Top, scale.px(2.0))
            };
            let (x, y) = chart.backend_coord(&(center, y));
            let style = label_font.pos(Pos::new(HPos::Center, anchor));
            area.draw(&Text::new(text, (x - base.0, y - base.1 + shift), style))
                .msg()?;
        }
    }
    // Category names under their groups (plotters' own ticks would sit at round numbers).
    let label = scale
        .font(size::TICK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (index, name) in panel.categories.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(index as f64 + 0.5, y_min));
        area.draw(&Text::new(
            name.clone(),
            (x - base.0, y - base.1 + scale.px(3.0)),
            label.clone(),
        ))
        .msg()?;
    }
    Ok(())
}

/// One bar from `x0` wide `width` (of which it fills 90 %), with its error bar.
fn draw_bar<DB: DrawingBackend>(
    chart: &ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    scale: Scale,
    bar: &Bar,
    color: RGBColor,
    (x0, width): (f64, f64),
) -> Result<(), String> {
    let (x1, center) = (x0 + width * 0.9, x0 + width * 0.45);
    chart
        .plotting_area()
        .draw(&Rectangle::new(
            [(x0, 0.0), (x1, bar.value)],
            color.filled(),
        ))
        .msg()?;
    let Some((low, high)) = bar.range else {
        return Ok(());
    };
    let cap = width * 0.2;
    let style = INK.stroke_width(scale.upx(0.8));
    for path in [
        vec![(center, low), (center, high)],
        vec![(center - cap, low), (center + cap, low)],
        vec![(center - cap, high), (center + cap, high)],
    ] {
        chart
            .plotting_area()
            .draw(&PathElement::new(path, style))
            .msg()?;
    }
    Ok(())
}

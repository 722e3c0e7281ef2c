//! A panel of lines over rounds: one line per series (solid or dashed) with markers and an
//! optional shaded band (mean ± 1 std), axes labelled, integer rounds as ticks.

use plotters::{
    chart::ChartBuilder,
    coord::Shift,
    element::{Circle, Polygon},
    prelude::{DrawingArea, DrawingBackend},
    series::{DashedLineSeries, LineSeries},
    style::{Color, RGBColor, TRANSPARENT},
};

use super::{
    style::{size, GRID, INK},
    OrMessage, Scale,
};

/// One point of a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Position on the x axis (a 1-based round).
    pub x: f64,
    /// The line's value.
    pub mean: f64,
    /// The band's lower and upper edge, when there is one.
    pub band: Option<(f64, f64)>,
}

/// One line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its colour.
    pub color: RGBColor,
    /// Dashed (the second sweep of a comparison) or solid.
    pub dashed: bool,
    /// Stroke width in points (wider lines drawn first stay visible under equal ones).
    pub width_pt: f64,
    /// Points in x order.
    pub points: Vec<Point>,
}

/// A panel of lines.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePanel {
    /// Title above the panel.
    pub title: String,
    /// x axis description.
    pub x_label: String,
    /// y axis description.
    pub y_label: String,
    /// The lines.
    pub lines: Vec<Line>,
    /// Start the y axis at zero (quantities such as bytes).
    pub from_zero: bool,
    /// Bounds the band may not cross (0 and 1 for a share: ± 1 std is no reason to draw an
    /// accuracy above 1).
    pub clamp: Option<(f64, f64)>,
}

/// `band` cut to `bounds`.
fn clamp_band(band: (f64, f64), bounds: Option<(f64, f64)>) -> (f64, f64) {
    match bounds {
        Some((low, high)) => (band.0.clamp(low, high), band.1.clamp(low, high)),
        None => band,
    }
}

/// Padded range covering `values` (a unit range around a single value).
pub fn padded_range(values: impl IntoIterator<Item = f64>, pad_share: f64) -> (f64, f64) {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for value in values.into_iter().filter(|v| v.is_finite()) {
        low = low.min(value);
        high = high.max(value);
    }
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let span = high - low;
    if span <= 1e-9 * high.abs().max(low.abs()).max(1e-12) {
        let half = (low.abs() * 0.1).max(1e-3);
        return (low - half, high + half);
    }
    (low - span * pad_share, high + span * pad_share)
}

/// Width in points of a y label area: the widest tick label of `low..high` at `decimals`,
/// the tick marks, and the rotated axis description.
pub fn y_label_area_pt(low: f64, high: f64, decimals: usize) -> f64 {
    let chars = [low, high, (low + high) / 2.0]
        .iter()
        .map(|v| format!("{v:.decimals$}").chars().count())
        .max()
        .unwrap_or(4);
    chars as f64 * size::TICK * 0.62 + size::AXIS * 1.3 + 12.0
}

/// Whether a band from `low` to `high` around `mean` is too thin to draw (float noise of
/// equal values).
pub fn negligible(low: f64, high: f64, mean: f64) -> bool {
    high - low <= 1e-9 * mean.abs().max(1e-12)
}

/// `value` with `decimals` decimals, never `-0.000`.
pub fn tick_label(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text[1..].to_owned()
    } else {
        text
    }
}

/// Decimals for tick labels of an axis spanning `span`.
pub fn tick_decimals(span: f64) -> usize {
    if span <= 0.0 || !span.is_finite() {
        return 2;
    }
    let step = span / 5.0;
    (1 - step.log10().floor() as i32).clamp(0, 6) as usize
}

/// Draws `panel` into `area`.
///
/// # Errors
/// The backend's message.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    panel: &LinePanel,
) -> Result<(), String> {
    let xs = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.x));
    let (x_min, x_max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (x_min, x_max) = if x_min.is_finite() {
        (x_min - 0.25, x_max + 0.25)
    } else {
        (0.75, 1.25)
    };
    let ys = panel.lines.iter().flat_map(|l| {
        l.points.iter().flat_map(|p| {
            let band = p.band.map(|b| clamp_band(b, panel.clamp));
            [Some(p.mean), band.map(|b| b.0), band.map(|b| b.1)]
                .into_iter()
                .flatten()
        })
    });
    let (y_min, y_max) = padded_range(ys, 0.08);
    let (y_min, y_max) = if panel.from_zero && y_min > 0.0 {
        (0.0, y_max.max(y_min * 1.1))
    } else {
        (y_min, y_max)
    };
    let decimals = tick_decimals(y_max - y_min);
    let mut chart = ChartBuilder::on(area)
        .margin(scale.px(5.0))
        .margin_right(scale.px(10.0))
        .caption(&panel.title, scale.font(size::PANEL_TITLE))
        .x_label_area_size(scale.px(26.0))
        .y_label_area_size(scale.px(y_label_area_pt(y_min, y_max, decimals)))
        .build_cartesian_2d(x_min..x_max, y_min..y_max)
        .msg()?;
    let x_ticks = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 {
            format!("{}", x.round() as i64)
        } else {
            String::new()
        }
    };
    let y_ticks = |y: &f64| tick_label(*y, decimals);
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .label_style(scale.font(size::TICK))
        .axis_desc_style(scale.font(size::AXIS))
        .x_labels(((x_max - x_min).round() as usize + 1).clamp(2, 11))
        .y_labels(6)
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&y_ticks)
        .bold_line_style(GRID.stroke_width(scale.upx(0.5)))
        .light_line_style(TRANSPARENT)
        .axis_style(INK.stroke_width(scale.upx(0.6)))
        .set_all_tick_mark_size(scale.px(2.5))
        .draw()
        .msg()?;
    for line in &panel.lines {
        // Points without a band (one unit, or float noise of equal values) pinch it to the
        // line, so the band stays one continuous shape.
        let edges: Vec<(f64, f64, f64)> = line
            .points
            .iter()
            .map(|p| match p.band.map(|b| clamp_band(b, panel.clamp)) {
                Some((low, high)) if !negligible(low, high, p.mean) => (p.x, low, high),
                _ => (p.x, p.mean, p.mean),
            })
            .collect();
        if edges.len() >= 2 && edges.iter().any(|(_, low, high)| high > low) {
            let outline: Vec<(f64, f64)> = edges
                .iter()
                .map(|(x, _, high)| (*x, *high))
                .chain(edges.iter().rev().map(|(x, low, _)| (*x, *low)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    outline,
                    line.color.mix(0.18).filled(),
                )))
                .msg()?;
        }
        let points: Vec<(f64, f64)> = line.points.iter().map(|p| (p.x, p.mean)).collect();
        let stroke = line.color.stroke_width(scale.upx(line.width_pt));
        if line.dashed {
            chart
                .draw_series(DashedLineSeries::new(
                    points.clone(),
                    scale.px(4.0),
                    scale.px(2.5),
                    stroke,
                ))
                .msg()?;
        } else {
            chart
                .draw_series(LineSeries::new(points.clone(), stroke))
                .msg()?;
        }
        let radius = scale.px(0.8 + line.width_pt * 0.6);
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, radius, line.color.filled())),
            )
            .msg()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_pad_and_survive_constants() {
        assert_eq!(padded_range([0.0, 10.0], 0.1), (-1.0, 11.0));
        let (low, high) = padded_range([2.0, 2.0], 0.1);
        assert!(low < 2.0 && high > 2.0);
        assert_eq!(padded_range([f64::NAN], 0.1), (0.0, 1.0));
        let (low, high) = padded_range([29.4912, 29.4912 + 4e-15], 0.08);
        assert!(
            low < 27.0 && high > 32.0,
            "float noise is a constant: {low}..{high}"
        );
        assert!(negligible(29.4912, 29.4912 + 4e-15, 29.4912) && !negligible(0.1, 0.2, 0.15));
        assert!(y_label_area_pt(-0.0015, 0.0625, 4) > y_label_area_pt(0.0, 5.0, 1));
        assert_eq!(tick_label(-0.0001, 3), "0.000");
        assert_eq!(tick_label(-0.05, 3), "-0.050");
        assert_eq!(tick_decimals(1.0), 2);
        assert_eq!(tick_decimals(0.004), 5);
        assert_eq!(tick_decimals(500.0), 0);
    }
}

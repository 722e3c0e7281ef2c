//! A legend strip below the panels (never on top of data): entries packed into centred rows.
//! Row breaks come from a width estimate in points, so the figure's height is known before
//! drawing; positions within a row use the backend's measured text widths.

use plotters::{
    coord::Shift,
    element::{DashedPathElement, PathElement, Rectangle},
    prelude::{DrawingArea, DrawingBackend},
    style::{
        text_anchor::{HPos, Pos, VPos},
        Color, RGBColor,
    },
};

use super::{style::size, OrMessage, Palette, Scale};

/// How an entry's colour is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swatch {
    /// A solid line.
    Line,
    /// A dashed line.
    Dashed,
    /// A filled box.
    Box,
}

/// One legend entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its text.
    pub label: String,
    /// Its colour.
    pub color: RGBColor,
    /// How the colour is shown.
    pub swatch: Swatch,
}

/// One solid-line entry per method, labelled and coloured as everywhere in the report.
pub fn method_lines(methods: &[String], palette: &Palette) -> Vec<Entry> {
    methods
        .iter()
        .map(|m| Entry {
            label: crate::order::method_label(m),
            color: palette.color(m),
            swatch: Swatch::Line,
        })
        .collect()
}

const SWATCH_PT: f64 = 16.0;
const GAP_PT: f64 = 4.0;
const SPACING_PT: f64 = 14.0;

/// Estimated width in points (DejaVu Sans averages under 0.62 em per character).
fn estimate_pt(entry: &Entry) -> f64 {
    SWATCH_PT + GAP_PT + entry.label.chars().count() as f64 * size::LEGEND * 0.62
}

/// Entries per row for a strip `width_in` inches wide.
fn pack(entries: &[Entry], width_in: f64) -> Vec<Vec<&Entry>> {
    let available = width_in * 72.0 - 2.0 * SPACING_PT;
    let mut rows: Vec<Vec<&Entry>> = Vec::new();
    let mut used = f64::INFINITY;
    for entry in entries {
        let width = estimate_pt(entry);
        if used + SPACING_PT + width > available {
            rows.push(Vec::new());
            used = width;
        } else {
            used += SPACING_PT + width;
        }
        if let Some(row) = rows.last_mut() {
            row.push(entry);
        }
    }
    rows
}

/// Rows a legend of `entries` needs across `width_in` inches.
pub fn rows_needed(entries: &[Entry], width_in: f64) -> usize {
    pack(entries, width_in).len().max(1)
}

/// Draws `entries` centred in `area` (which is `width_in` inches wide).
///
/// # Errors
/// The backend's message.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    entries: &[Entry],
    width_in: f64,
) -> Result<(), String> {
    let font = scale
        .font(size::LEGEND)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (width, _) = area.dim_in_pixel();
    let row_height = scale.px(size::LEGEND * 1.9);
    for (index, row) in pack(entries, width_in).into_iter().enumerate() {
        let widths: Vec<i32> = row
            .iter()
            .map(|e| {
                area.estimate_text_size(&e.label, &font)
                    .map(|(w, _)| w as i32)
                    .unwrap_or(0)
            })
            .collect();
        let total: i32 = widths
            .iter()
            .map(|w| w + scale.px(SWATCH_PT + GAP_PT))
            .sum::<i32>()
            + scale.px(SPACING_PT) * (row.len() as i32 - 1);
        let mut x = (width as i32 - total) / 2;
        let y = scale.px(2.0) + row_height * index as i32 + row_height / 2;
        for (entry, text_width) in row.iter().zip(widths) {
            let (x0, x1) = (x, x + scale.px(SWATCH_PT));
            match entry.swatch {
                Swatch::Line => area
                    .draw(&PathElement::new(
                        vec![(x0, y), (x1, y)],
                        entry.color.stroke_width(scale.upx(1.6)),
                    ))
                    .msg()?,
                Swatch::Dashed => area
                    .draw(&DashedPathElement::new(
                        vec![(x0, y), (x1, y)],
                        scale.px(3.0),
                        scale.px(2.0),
                        entry.color.stroke_width(scale.upx(1.6)),
                    ))
                    .msg()?,
                Swatch::Box => {
                    let half = scale.px(size::LEGEND * 0.4);
                    area.draw(&Rectangle::new(
                        [
                            (x0 + scale.px(3.0), y - half),
                            (x1 - scale.px(3.0), y + half),
                        ],
                        entry.color.filled(),
                    ))
                    .msg()?;
                }
            }
            area.draw_text(&entry.label, &font, (x1 + scale.px(GAP_PT), y))
                .msg()?;
            x = x1 + scale.px(GAP_PT) + text_width + scale.px(SPACING_PT);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_legends_wrap() {
        let entry = |label: &str| Entry {
            label: label.into(),
            color: RGBColor(0, 0, 0),
            swatch: Swatch::Line,
        };
        let short = vec![entry("DPO"), entry("KTO"), entry("KTOR")];
        assert_eq!(rows_needed(&short, 4.0), 1);
        let long: Vec<Entry> = (0..12)
            .map(|i| entry(&format!("a long method name {i}")))
            .collect();
        assert!(rows_needed(&long, 4.0) >= 4);
    }
}

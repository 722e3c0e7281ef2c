//! The look shared by every figure: the embedded DejaVu Sans font, sizes in points scaled to
//! the output's resolution, and one colour per method that stays the same across figures.

use std::{collections::BTreeMap, sync::OnceLock};

use plotters::style::{FontStyle, IntoFont, RGBColor, TextStyle, BLACK};

use crate::order;

/// DejaVu Sans 2.37 (Debian's fonts-dejavu-core; license in `analysis/fonts/LICENSE`).
static DEJAVU_SANS: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

/// The family name figures use; SVG viewers fall back to their own sans-serif.
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters (once per process).
///
/// # Errors
/// A message when the embedded bytes are not a font (a broken checkout).
pub fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS)
                .map_err(|_| "the embedded DejaVu Sans font does not parse; restore analysis/fonts/DejaVuSans.ttf from git".to_owned())
        })
        .clone()
}

/// Pixels per typographic point of one output (SVG at 96 dpi, PNG at 300 dpi).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Pixels per point: dpi / 72.
    pub px_per_pt: f64,
}

impl Scale {
    /// The scale of output at `dpi` dots per inch.
    pub fn for_dpi(dpi: f64) -> Self {
        Scale {
            px_per_pt: dpi / 72.0,
        }
    }

    /// `points` in whole pixels (at least 1).
    pub fn px(&self, points: f64) -> i32 {
        ((points * self.px_per_pt).round() as i32).max(1)
    }

    /// `points` in whole pixels, unsigned.
    pub fn upx(&self, points: f64) -> u32 {
        self.px(points).unsigned_abs()
    }

    /// Text of `points` size in black. Plotters' size is the glyph box: 1.24 × the em size
    /// the SVG backend writes.
    pub fn font(&self, points: f64) -> TextStyle<'static> {
        (FAMILY, points * 1.24 * self.px_per_pt)
            .into_font()
            .color(&BLACK)
    }
}

/// Font sizes, in points.
pub mod size {
    /// Figure title.
    pub const TITLE: f64 = 11.0;
    /// Panel title.
    pub const PANEL_TITLE: f64 = 9.5;
    /// Axis description.
    pub const AXIS: f64 = 8.5;
    /// Tick labels.
    pub const TICK: f64 = 7.5;
    /// Legend entries.
    pub const LEGEND: f64 = 8.5;
}

/// Tableau 10: the paper's methods take the first three, others the rest in name order.
const TABLEAU: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Light grey for grid lines.
pub const GRID: RGBColor = RGBColor(225, 225, 225);
/// Dark grey for axes and error bars.
pub const INK: RGBColor = RGBColor(60, 60, 60);

/// One colour per method: DPO blue, KTO orange, KTOR green, any other method the next free
/// colour in name order, the same in every figure of a report.
#[derive(Debug, Clone)]
pub struct Palette {
    colors: BTreeMap<String, RGBColor>,
}

impl Palette {
    /// Colours for `methods`.
    pub fn new<'a>(methods: impl IntoIterator<Item = &'a str>) -> Self {
        let mut others: Vec<&str> = methods
            .into_iter()
            .filter(|m| !order::METHODS.contains(m))
            .collect();
        others.sort_unstable();
        others.dedup();
        let mut colors: BTreeMap<String, RGBColor> = order::METHODS
            .iter()
            .zip(TABLEAU)
            .map(|(m, c)| ((*m).to_owned(), c))
            .collect();
        for (index, method) in others.into_iter().enumerate() {
            colors.insert(
                method.to_owned(),
                TABLEAU[(order::METHODS.len() + index) % TABLEAU.len()],
            );
        }
        Palette { colors }
    }

    /// The colour of `method` (grey when unknown to this palette).
    pub fn color(&self, method: &str) -> RGBColor {
        self.colors.get(method).copied().unwrap_or(TABLEAU[7])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_methods_keep_their_colours() {
        let a = Palette::new(["ktor", "simpo"]);
        let b = Palette::new(["dpo", "kto", "ktor", "bco", "simpo"]);
        assert_eq!(a.color("ktor"), RGBColor(44, 160, 44));
        assert_eq!(b.color("dpo"), RGBColor(31, 119, 180));
        assert_eq!(a.color("simpo"), TABLEAU[3]);
        assert_eq!(b.color("bco"), TABLEAU[3]);
        assert_eq!(b.color("simpo"), TABLEAU[4]);
    }

    #[test]
    fn font_registers() {
        assert_eq!(register_font(), Ok(()));
        assert_eq!(Scale::for_dpi(300.0).px(72.0), 300);
    }
}

//! Figures with plotters, each written as SVG (96 dpi, text as `<text>`) and PNG (300 dpi,
//! `pHYs` set), drawn by the same code at two scales, with the embedded DejaVu Sans font:
//!
//! | figure | file | shows |
//! | --- | --- | --- |
//! | [`training::Training`] | `training-<aggregator>` | reward margin, accuracy and loss per round, one line per method (mean over seeds and clients, band ± 1 std) |
//! | [`bars::Bars`] | `results`, `harmless-rate` | the results table as grouped bars per aggregator and method, error bars the 95 % bootstrap interval, significance marks against DPO |
//! | [`differences::differences`] | `differences` | each method minus DPO on the same seeds and questions, error bars the paired 95 % bootstrap interval |
//! | [`communication::Communication`] | `communication` | megabytes sent and received per round, per method |
//! | [`partition::PartitionFigure`] | `partition` | examples per client: pairs, desirable and undesirable answers |
//! | [`tradeoff::TradeoffCurve`] | `privacy-curve`, `communication-curve` | each benchmark against the ε spent or the megabytes sent (one sweep per setting), per method, dashed the same method without DP |
//!
//! Each figure prepares plain data from a [`Sweep`](crate::Sweep) (`from_sweep`) and implements
//! [`Figure`]; [`save`] renders it.

pub mod bars;
pub mod communication;
pub mod differences;
mod legend;
mod lines;
pub mod partition;
pub mod png;
pub mod style;
pub mod tradeoff;
pub mod training;

use std::path::{Path, PathBuf};

use plotters::{
    coord::Shift,
    prelude::{BitMapBackend, DrawingArea, DrawingBackend, IntoDrawingArea, SVGBackend},
    style::WHITE,
};

pub use self::style::{Palette, Scale};
use crate::{Error, Result};

/// Resolution of the PNG files.
pub const PNG_DPI: f64 = 300.0;
/// Resolution the SVG files are laid out at (CSS pixels).
pub const SVG_DPI: f64 = 96.0;

/// A drawing error as text (plotters' error types are generic over the backend).
pub trait OrMessage<T> {
    /// The error's text.
    fn msg(self) -> std::result::Result<T, String>;
}

impl<T, E: std::fmt::Display> OrMessage<T> for std::result::Result<T, E> {
    fn msg(self) -> std::result::Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Something drawable at any resolution.
pub trait Figure {
    /// File stem (`training-fedavg`).
    fn name(&self) -> String;
    /// One sentence for the report.
    fn caption(&self) -> String;
    /// Width and height in inches.
    fn size_in(&self) -> (f64, f64);
    /// Draws onto `area` (already white), sizes scaled by `scale`.
    ///
    /// # Errors
    /// The backend's message.
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        scale: Scale,
    ) -> std::result::Result<(), String>;
}

/// The files of one saved figure.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureFiles {
    /// File stem.
    pub name: String,
    /// One sentence for the report.
    pub caption: String,
    /// The SVG file.
    pub svg: PathBuf,
    /// The PNG file.
    pub png: PathBuf,
}

/// Pixel size of a figure at `dpi`.
pub fn pixels(size_in: (f64, f64), dpi: f64) -> (u32, u32) {
    (
        (size_in.0 * dpi).round() as u32,
        (size_in.1 * dpi).round() as u32,
    )
}

/// Writes `dir/<name>.svg` and `dir/<name>.png`.
///
/// # Errors
/// [`Error::Figure`] naming the file when drawing fails; [`Error::Io`].
pub fn save(figure: &impl Figure, dir: &Path) -> Result<FigureFiles> {
    style::register_font().map_err(|message| Error::Figure {
        path: dir.to_path_buf(),
        message,
    })?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = figure.name();
    let svg = dir.join(format!("{name}.svg"));
    let png = dir.join(format!("{name}.png"));
    let failed = |path: PathBuf| move |message: String| Error::Figure { path, message };
    {
        let area = SVGBackend::new(&svg, pixels(figure.size_in(), SVG_DPI)).into_drawing_area();
        render(figure, &area, Scale::for_dpi(SVG_DPI)).map_err(failed(svg.clone()))?;
    }
    {
        let area = BitMapBackend::new(&png, pixels(figure.size_in(), PNG_DPI)).into_drawing_area();
        render(figure, &area, Scale::for_dpi(PNG_DPI)).map_err(failed(png.clone()))?;
    }
    png::set_dpi(&png, PNG_DPI)?;
    Ok(FigureFiles {
        name,
        caption: figure.caption(),
        svg,
        png,
    })
}

fn render<DB: DrawingBackend>(
    figure: &impl Figure,
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
) -> std::result::Result<(), String> {
    area.fill(&WHITE).msg()?;
    figure.draw(area, scale)?;
    area.present().msg()
}

/// The parts of a figure: title strip, panels, legend strip.
pub struct Areas<DB: DrawingBackend> {
    /// The title strip.
    pub title: DrawingArea<DB, Shift>,
    /// One area per panel, row by row.
    pub panels: Vec<DrawingArea<DB, Shift>>,
    /// The legend strip.
    pub legend: DrawingArea<DB, Shift>,
}

/// Panels per row at most.
const MAX_COLUMNS: usize = 3;

/// Size in inches of a figure of `panels` panels of `panel_in` each (at most three a row, four
/// as two by two) with a legend strip tall enough for `legend` at that width.
pub fn figure_size(panels: usize, panel_in: (f64, f64), legend: &[legend::Entry]) -> (f64, f64) {
    let width = grid_size(panels, panel_in, 1).0;
    grid_size(panels, panel_in, legend::rows_needed(legend, width))
}

/// Splits `area` into a title strip, the grid of [`figure_size`]'s `panels` and a legend strip
/// that fits `legend`.
pub fn layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    panels: usize,
    panel_in: (f64, f64),
    legend: &[legend::Entry],
) -> Areas<DB> {
    let width = grid_size(panels, panel_in, 1).0;
    let legend_rows = legend::rows_needed(legend, width);
    let (title, rest) = area.split_vertically(scale.px(style::size::TITLE * 2.2));
    let legend_height = scale.px(style::size::LEGEND * 1.9 * legend_rows as f64 + 4.0);
    let (_, height) = rest.dim_in_pixel();
    let (grid, legend) = rest.split_vertically(height as i32 - legend_height);
    let columns = columns_for(panels);
    let rows = panels.div_ceil(columns).max(1);
    let cells = grid.split_evenly((rows, columns));
    Areas {
        title,
        panels: cells.into_iter().take(panels).collect(),
        legend,
    }
}

/// Columns of a grid of `panels`: all in one row up to [`MAX_COLUMNS`], four as two by two.
fn columns_for(panels: usize) -> usize {
    if panels == 4 {
        2
    } else {
        panels.clamp(1, MAX_COLUMNS)
    }
}

/// Size in inches of a figure with `panels` panels and `legend_rows` legend rows.
fn grid_size(panels: usize, panel_in: (f64, f64), legend_rows: usize) -> (f64, f64) {
    let columns = columns_for(panels);
    let rows = panels.div_ceil(columns).max(1);
    let title = style::size::TITLE * 2.2 / 72.0;
    let legend = (style::size::LEGEND * 1.9 * legend_rows as f64 + 4.0) / 72.0;
    (
        panel_in.0 * columns as f64,
        panel_in.1 * rows as f64 + title + legend,
    )
}

/// Draws `text` centred in `area` as the figure title.
pub fn draw_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    text: &str,
) -> std::result::Result<(), String> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let (width, height) = area.dim_in_pixel();
    let style = scale
        .font(style::size::TITLE)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw_text(text, &style, (width as i32 / 2, height as i32 / 2))
        .msg()
}

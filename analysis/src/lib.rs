//! Analysis of fedpref runs: read run directories into polars frames, summarize them in the
//! paper's table layout (mean ± std over seeds, best per row marked), draw figures, and write
//! a report (`fedpref report`).
//!
//! - [`read()`] turns a run or sweep directory into a [`Sweep`]: frames of steps, rounds,
//!   evaluations and config, with missing or corrupt files listed as [`Problem`]s;
//! - [`results_table`] and [`round_table`] summarize it as [`Table`]s, rendered by
//!   [`table::render`] (Markdown, LaTeX, HTML) and [`table::write`] (CSV, Parquet);
//! - [`figures`] draws SVG and 300 dpi PNG figures with an embedded font;
//! - [`write_report`] and [`write_comparison`] put everything in a `report/` directory.
//!
//! ```no_run
//! use std::path::Path;
//!
//! let sweep = fedpref_analysis::read(Path::new("runs/quickstart"), Default::default())?;
//! let (table, _source) = fedpref_analysis::results_table(&sweep);
//! println!("{}", fedpref_analysis::table::render::markdown(&table));
//! fedpref_analysis::write_report(&sweep, Path::new("runs/quickstart/report"))?;
//! # Ok::<(), fedpref_analysis::Error>(())
//! ```
#![deny(missing_docs)]

mod compare;
mod error;
pub mod figures;
mod frame;
mod html;
pub mod order;
pub mod read;
mod report;
pub mod results;
mod stat;
mod summary;
pub mod table;

pub use compare::{comparison_table, write_comparison};
pub use error::{Error, Result};
pub use read::{read, Problem, ReadOptions, Run, Sweep};
pub use report::{write_report, Report};
pub use results::{results_table, round_table, Source};
pub use stat::Stat;
pub use table::Table;

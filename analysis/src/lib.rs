//! Analysis of fedpref runs: read run directories into polars frames, summarize them in the
//! paper's table layout (mean over seeds with a 95 % bootstrap interval, each method tested
//! against DPO on the same questions and seeds, best per row marked), draw figures, and write
//! a report (`fedpref report`).
//!
//! - [`read()`] turns a run or sweep directory into a [`Sweep`]: frames of steps, rounds,
//!   evaluations and config, the judge check, with missing or corrupt files listed as
//!   [`Problem`]s;
//! - [`results_table`] and [`round_table`] summarize it as [`Table`]s, rendered by
//!   [`table::render`] (Markdown, LaTeX, HTML) and [`table::write`] (CSV, Parquet);
//! - [`stat`] holds the statistics: percentile bootstrap intervals (two-level over seeds and
//!   questions), the paired comparison with the baseline (bootstrap and Wilcoxon signed-rank
//!   test, rank-biserial effect size) and Holm's correction;
//! - [`judge`] says whether judge-scored numbers can be read, [`diagnostics`] counts unparsed
//!   and failed items and the judge's position consistency, [`overview`] sums up each
//!   benchmark;
//! - [`figures`] draws SVG and 300 dpi PNG figures with an embedded font;
//! - [`write_report`], [`write_comparison`], [`write_privacy_report`] (one sweep per privacy
//!   setting, [`privacy`]) and [`write_communication_report`] (one sweep per codec setting,
//!   [`communication`]) put everything in a `report/` directory.
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

pub mod communication;
mod compare;
pub mod diagnostics;
mod error;
pub mod figures;
mod frame;
mod html;
pub mod judge;
pub mod order;
pub mod overview;
pub mod privacy;
pub mod read;
mod report;
pub mod results;
pub mod stat;
mod summary;
pub mod table;
pub mod tradeoff;

pub use communication::write_communication_report;
pub use compare::{comparison_table, write_comparison};
pub use error::{Error, Result};
pub use privacy::{privacy_table, write_privacy_report};
pub use read::{read, JudgeCheck, Problem, ReadOptions, Run, Sweep};
pub use report::{write_report, Report};
pub use results::{results_table, round_table, Source};
pub use stat::Stat;
pub use table::Table;

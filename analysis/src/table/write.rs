//! A [`Table`] as a long polars frame, one row per cell, and its CSV and Parquet files, for
//! further analysis. Columns:
//!
//! | column | meaning |
//! | --- | --- |
//! | `<row header>`, `benchmark`, `metric`, `method` | the cell |
//! | `mean`, `ci_low`, `ci_high` | mean over seeds of each seed's mean over questions; its 95 % bootstrap interval (null without one) |
//! | `std`, `seeds` | sample std over seeds of the seed means (null with one seed); seeds |
//! | `questions`, `n` | distinct questions (0 for values of whole runs); values behind the cell |
//! | `best` | best of its row and group |
//! | `versus` | the baseline the method was compared with (null for the baseline and without one) |
//! | `pairs`, `diff`, `diff_low`, `diff_high`, `p_bootstrap` | matched (seed, question) pairs; mean difference method − baseline, its paired bootstrap interval and p-value |
//! | `signed_rank_n`, `p_signed_rank`, `signed_rank_method`, `p_holm`, `rank_biserial` | the Wilcoxon test: units ranked (non-zero differences), two-sided p, `exact` or `normal`, p after Holm's correction, effect size |
//! | `mark` | `better` or `worse` when `p_holm` < 0.05, else null |

use std::{fs::File, path::Path};

use polars::prelude::{Column, CsvWriter, DataFrame, ParquetWriter, SerWriter};

use super::{Cell, Table};
use crate::{stat::wilcoxon::Method, Error, Result};

/// The columns of the long frame, filled cell by cell.
#[derive(Default)]
struct Long {
    text: [Vec<String>; 4],
    mean: Vec<f64>,
    ci: [Vec<Option<f64>>; 2],
    std: Vec<Option<f64>>,
    counts: [Vec<u32>; 3],
    best: Vec<bool>,
    versus: Vec<Option<String>>,
    pairs: Vec<Option<u32>>,
    diff: [Vec<Option<f64>>; 4],
    rank_n: Vec<Option<u32>>,
    tests: [Vec<Option<f64>>; 3],
    method: Vec<Option<&'static str>>,
    mark: Vec<Option<&'static str>>,
}

impl Long {
    fn push(&mut self, keys: [&str; 4], cell: &Cell, baseline: Option<&str>) {
        for (column, key) in self.text.iter_mut().zip(keys) {
            column.push(key.to_owned());
        }
        self.mean.push(cell.stat.mean);
        self.ci[0].push(cell.interval.map(|i| i.low));
        self.ci[1].push(cell.interval.map(|i| i.high));
        self.std.push(cell.stat.std);
        for (column, count) in
            self.counts
                .iter_mut()
                .zip([cell.stat.n, cell.questions, cell.values])
        {
            column.push(count as u32);
        }
        self.best.push(cell.best);
        let versus = cell.versus;
        self.versus.push(versus.and(baseline).map(str::to_owned));
        let paired = versus.map(|v| v.paired);
        self.pairs.push(paired.map(|p| p.pairs as u32));
        let diff = [
            paired.map(|p| p.difference),
            paired.and_then(|p| p.interval).map(|i| i.low),
            paired.and_then(|p| p.interval).map(|i| i.high),
            paired.and_then(|p| p.p_bootstrap),
        ];
        for (column, value) in self.diff.iter_mut().zip(diff) {
            column.push(value);
        }
        self.rank_n.push(paired.map(|p| p.wilcoxon.n as u32));
        let tests = [
            paired.map(|p| p.wilcoxon.p_value),
            versus.map(|v| v.p_adjusted),
            paired.map(|p| p.wilcoxon.rank_biserial),
        ];
        for (column, value) in self.tests.iter_mut().zip(tests) {
            column.push(value);
        }
        self.method.push(paired.map(|p| match p.wilcoxon.method {
            Method::Exact => "exact",
            Method::Normal => "normal",
        }));
        self.mark.push(cell.mark().map(|m| m.word()));
    }

    fn into_columns(self, row_header: &str) -> Vec<Column> {
        let [row, benchmark, metric, method] = self.text;
        let [ci_low, ci_high] = self.ci;
        let [seeds, questions, n] = self.counts;
        let [diff, diff_low, diff_high, p_bootstrap] = self.diff;
        let [p_signed_rank, p_holm, rank_biserial] = self.tests;
        vec![
            Column::new(row_header.into(), row),
            Column::new("benchmark".into(), benchmark),
            Column::new("metric".into(), metric),
            Column::new("method".into(), method),
            Column::new("mean".into(), self.mean),
            Column::new("ci_low".into(), ci_low),
            Column::new("ci_high".into(), ci_high),
            Column::new("std".into(), self.std),
            Column::new("seeds".into(), seeds),
            Column::new("questions".into(), questions),
            Column::new("n".into(), n),
            Column::new("best".into(), self.best),
            Column::new("versus".into(), self.versus),
            Column::new("pairs".into(), self.pairs),
            Column::new("diff".into(), diff),
            Column::new("diff_low".into(), diff_low),
            Column::new("diff_high".into(), diff_high),
            Column::new("p_bootstrap".into(), p_bootstrap),
            Column::new("signed_rank_n".into(), self.rank_n),
            Column::new("p_signed_rank".into(), p_signed_rank),
            Column::new("signed_rank_method".into(), self.method),
            Column::new("p_holm".into(), p_holm),
            Column::new("rank_biserial".into(), rank_biserial),
            Column::new("mark".into(), self.mark),
        ]
    }
}

/// One row per non-empty cell.
///
/// # Errors
/// [`Error::Frame`] if polars rejects the columns (not expected).
pub fn to_frame(table: &Table) -> Result<DataFrame> {
    let mut long = Long::default();
    for (row_key, groups) in table.rows.iter().zip(&table.cells) {
        for (group, methods) in table.groups.iter().zip(groups) {
            for (method_key, cell) in table.methods.iter().zip(methods) {
                let Some(cell) = cell else { continue };
                let keys = [row_key, &group.benchmark, &group.metric, method_key];
                long.push(keys.map(String::as_str), cell, table.baseline.as_deref());
            }
        }
    }
    let height = long.mean.len();
    DataFrame::new(height, long.into_columns(&table.row_header.to_lowercase()))
        .map_err(|e| Error::frame(format!("building the frame of table {:?}", table.title), e))
}

/// Writes `frame` as CSV to `path`.
///
/// # Errors
/// [`Error::Io`] or [`Error::Frame`] naming the file.
pub fn csv(frame: &mut DataFrame, path: &Path) -> Result<()> {
    let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
    CsvWriter::new(&mut file)
        .finish(frame)
        .map_err(|e| Error::frame(format!("writing {}", path.display()), e))
}

/// Writes `frame` as Parquet to `path`.
///
/// # Errors
/// [`Error::Io`] or [`Error::Frame`] naming the file.
pub fn parquet(frame: &mut DataFrame, path: &Path) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    ParquetWriter::new(file)
        .finish(frame)
        .map(|_| ())
        .map_err(|e| Error::frame(format!("writing {}", path.display()), e))
}

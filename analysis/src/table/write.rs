//! A [`Table`] as a long polars frame (one row per cell: `row, benchmark, metric, method,
//! mean, std, n, best`) and its CSV and Parquet files, for further analysis.

use std::{fs::File, path::Path};

use polars::prelude::{Column, CsvWriter, DataFrame, ParquetWriter, SerWriter};

use super::Table;
use crate::{Error, Result};

/// One row per non-empty cell.
///
/// # Errors
/// [`Error::Frame`] if polars rejects the columns (not expected).
pub fn to_frame(table: &Table) -> Result<DataFrame> {
    let (mut row, mut benchmark, mut metric, mut method) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut mean, mut std, mut n, mut best) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (row_key, groups) in table.rows.iter().zip(&table.cells) {
        for (group, methods) in table.groups.iter().zip(groups) {
            for (method_key, cell) in table.methods.iter().zip(methods) {
                let Some(cell) = cell else { continue };
                row.push(row_key.clone());
                benchmark.push(group.benchmark.clone());
                metric.push(group.metric.clone());
                method.push(method_key.clone());
                mean.push(cell.stat.mean);
                std.push(cell.stat.std);
                n.push(cell.stat.n as u32);
                best.push(cell.best);
            }
        }
    }
    let height = row.len();
    DataFrame::new(
        height,
        vec![
            Column::new(table.row_header.to_lowercase().as_str().into(), row),
            Column::new("benchmark".into(), benchmark),
            Column::new("metric".into(), metric),
            Column::new("method".into(), method),
            Column::new("mean".into(), mean),
            Column::new("std".into(), std),
            Column::new("n".into(), n),
            Column::new("best".into(), best),
        ],
    )
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

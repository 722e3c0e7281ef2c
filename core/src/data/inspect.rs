//! `fedpref data inspect`: what a data file holds, as tables.
//!
//! Loads the file with invalid records skipped and counted (whatever `on_invalid` says, so the
//! report can list them all), then reports the layout found, rows, pairs versus single answers,
//! label balance, length percentiles (characters until a tokenizer is available), invalid rows
//! by reason and, when a partition is given, a per-client preview.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use super::{
    client_data::{ClientCounts, ClientData},
    config::{DataConfig, OnInvalid},
    dataset::Dataset,
    example::Answers,
    format::Layout,
    load::{scan, MAX_REPORTED},
    message::n_chars,
    table::Table,
    {FileKind, InvalidCounts, Issue},
};
use crate::{Error, Result};

/// Nearest-rank percentiles of a length column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// Number of values.
    pub n: usize,
    /// Median.
    pub p50: usize,
    /// 90th percentile.
    pub p90: usize,
    /// 99th percentile.
    pub p99: usize,
    /// Largest value.
    pub max: usize,
}

impl Percentiles {
    /// The percentiles of `values`; `None` when empty.
    pub fn of(mut values: Vec<usize>) -> Option<Self> {
        values.sort_unstable();
        let n = values.len();
        let rank = |p: usize| values[((p * n).div_ceil(100)).clamp(1, n) - 1];
        let max = *values.last()?;
        Some(Self {
            n,
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max,
        })
    }
}

/// The per-client preview of a partition.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientPreview {
    /// The partitioner's name.
    pub partitioner: String,
    /// Counts per client.
    pub clients: Vec<ClientCounts>,
    /// Pairs a client can still compare (whole, or both answers on one client).
    pub pairs_intact: usize,
    /// Pairs in the data.
    pub n_pairs: usize,
    /// The partitioner's metrics.
    pub metrics: Vec<(String, f64)>,
}

/// What `fedpref data inspect` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectReport {
    /// The file.
    pub path: PathBuf,
    /// Array or JSON Lines.
    pub file_kind: FileKind,
    /// The layout used; `None` when no record was an object and none was configured.
    pub layout: Option<Layout>,
    /// Whether the layout was detected (rather than named in the config).
    pub detected: bool,
    /// Records read, valid or not.
    pub n_records: usize,
    /// Valid examples.
    pub n_examples: usize,
    /// Pairs among them.
    pub n_pairs: usize,
    /// Desirable single answers among them.
    pub n_desirable: usize,
    /// Undesirable single answers among them.
    pub n_undesirable: usize,
    /// The group column and its number of distinct values.
    pub groups: Option<(String, usize)>,
    /// The category column and its number of distinct values; `None`: length buckets.
    pub categories: Option<(String, usize)>,
    /// Length percentiles per part (`prompt`, `chosen`, `rejected`, `completion`, `total`).
    pub lengths: Vec<(&'static str, Percentiles)>,
    /// Invalid records by reason.
    pub invalid: InvalidCounts,
    /// The first invalid records.
    pub issues: Vec<Issue>,
    /// Lengths in tokens under a model's tokenizer and chat template, when one was given.
    pub tokens: Option<TokenLengths>,
    /// A partition preview, when one was run.
    pub clients: Option<ClientPreview>,
}

/// Token lengths of the examples as training sees them (chat template applied, EOS appended),
/// and how many the length limits keep, truncate or drop.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLengths {
    /// The model whose tokenizer and template were used.
    pub model: String,
    /// Percentiles per part (`prompt`, `answer`, `total` = prompt + longest answer), before fitting.
    pub lengths: Vec<(&'static str, Percentiles)>,
    /// `data.max_length`.
    pub max_length: usize,
    /// `data.max_prompt_length`.
    pub max_prompt_length: usize,
    /// Examples that fit, were truncated, were dropped under the limits.
    pub fit: crate::data::LengthCounts,
}

/// Loads `path` under `config` with invalid records skipped and counted, and reports on it.
/// Returns the data set too, for a partition preview; `None` when no record is valid (the
/// report then lists why).
///
/// # Errors
/// [`Error::Io`], [`Error::UnreadableData`] and [`Error::DataLayout`]; invalid records are
/// counted instead.
pub fn inspect(path: &Path, config: &DataConfig) -> Result<(InspectReport, Option<Dataset>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let scanned = scan(path, &bytes, config)?;
    let detected = config.format.layout().is_none();
    if scanned.examples.is_empty() {
        let report = InspectReport {
            path: path.to_owned(),
            file_kind: scanned.file_kind,
            layout: scanned.layout,
            detected,
            n_records: scanned.n_records,
            n_examples: 0,
            n_pairs: 0,
            n_desirable: 0,
            n_undesirable: 0,
            groups: None,
            categories: None,
            lengths: Vec::new(),
            invalid: scanned.invalid(),
            issues: scanned.issues.into_iter().take(MAX_REPORTED).collect(),
            tokens: None,
            clients: None,
        };
        return Ok((report, None));
    }
    let dataset = scanned.into_dataset(path, OnInvalid::Skip)?;
    Ok((InspectReport::new(&dataset, detected), Some(dataset)))
}

impl InspectReport {
    /// The report on `dataset`; `detected` says whether its layout was detected.
    pub fn new(dataset: &Dataset, detected: bool) -> Self {
        let mut parts: [(&'static str, Vec<usize>); 5] = [
            ("prompt", vec![]),
            ("chosen", vec![]),
            ("rejected", vec![]),
            ("completion", vec![]),
            ("total", vec![]),
        ];
        for e in &dataset.examples {
            parts[0].1.push(e.prompt_chars());
            match &e.answers {
                Answers::Pair { chosen, rejected } => {
                    parts[1].1.push(n_chars(chosen));
                    parts[2].1.push(n_chars(rejected));
                }
                Answers::Single { completion, .. } => parts[3].1.push(n_chars(completion)),
            }
            parts[4].1.push(e.n_chars());
        }
        let lengths = parts
            .into_iter()
            .filter_map(|(name, values)| Percentiles::of(values).map(|p| (name, p)))
            .collect();
        let distinct = |values: std::collections::BTreeSet<&str>| values.len();
        Self {
            path: dataset.path.clone(),
            file_kind: dataset.file_kind,
            layout: Some(dataset.layout),
            detected,
            n_records: dataset.n_records,
            n_examples: dataset.len(),
            n_pairs: dataset.n_pairs(),
            n_desirable: dataset.n_desirable(),
            n_undesirable: dataset.n_undesirable(),
            groups: dataset
                .group_key
                .clone()
                .map(|k| (k, dataset.groups().len())),
            categories: dataset.category_key.clone().map(|k| {
                (
                    k,
                    distinct(
                        dataset
                            .examples
                            .iter()
                            .filter_map(|e| e.category.as_deref())
                            .collect(),
                    ),
                )
            }),
            lengths,
            invalid: dataset.invalid.clone(),
            issues: dataset.issues.clone(),
            tokens: None,
            clients: None,
        }
    }

    /// Adds the preview of `clients`, the partition made by `partitioner` with `metrics`.
    pub fn with_clients(
        mut self,
        partitioner: &str,
        clients: &ClientData,
        metrics: &[(String, f64)],
    ) -> Self {
        self.clients = Some(ClientPreview {
            partitioner: partitioner.to_owned(),
            clients: (0..clients.n_clients())
                .map(|c| clients.counts(c))
                .collect(),
            pairs_intact: clients.pairs_intact(),
            n_pairs: self.n_pairs,
            metrics: metrics.to_vec(),
        });
        self
    }
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_summary(f)?;
        self.write_labels(f)?;
        self.write_lengths(f)?;
        self.write_invalid(f)?;
        self.write_clients(f)
    }
}

impl InspectReport {
    /// The file, layout, example counts, groups and categories.
    fn write_summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data: {}", self.path.display())?;
        let mut summary = Table::new(&["", ""]);
        summary.row(vec![
            "file".into(),
            format!("{}, {} records", self.file_kind.as_str(), self.n_records),
        ]);
        let how = if self.detected {
            "detected"
        } else {
            "as configured"
        };
        let layout = self.layout.map_or_else(
            || "unknown (no record is a JSON object)".to_owned(),
            |l| format!("{l} ({how})"),
        );
        summary.row(vec!["layout".into(), layout]);
        let singles = self.n_desirable + self.n_undesirable;
        summary.row(vec![
            "examples".into(),
            format!(
                "{} valid: {} pairs, {singles} single answers",
                self.n_examples, self.n_pairs
            ),
        ]);
        let groups = self
            .groups
            .as_ref()
            .map_or("none".to_owned(), |(k, n)| format!("{k}: {n} distinct"));
        summary.row(vec!["groups".into(), groups]);
        let categories = self.categories.as_ref().map_or(
            "none (dirichlet uses length buckets)".to_owned(),
            |(k, n)| format!("{k}: {n} distinct"),
        );
        summary.row(vec!["categories".into(), categories]);
        // The header row of a key-value table is empty; skip it.
        let text = summary.to_string();
        f.write_str(text.split_once('\n').map_or("", |(_, rest)| rest))?;
        Ok(())
    }

    /// Desirable and undesirable answers.
    fn write_labels(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nlabel balance (as single answers; a pair gives one of each)"
        )?;
        let desirable = self.n_pairs + self.n_desirable;
        let undesirable = self.n_pairs + self.n_undesirable;
        let total = desirable + undesirable;
        let mut labels = Table::new(&["label", "answers", "share"]);
        labels.row(vec![
            "desirable".into(),
            desirable.to_string(),
            percent(desirable, total),
        ]);
        labels.row(vec![
            "undesirable".into(),
            undesirable.to_string(),
            percent(undesirable, total),
        ]);
        write!(f, "{labels}")?;
        Ok(())
    }

    /// Length percentiles in characters, and in tokens when a model was given.
    fn write_lengths(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\nlengths (characters)")?;
        write!(f, "{}", length_table(&self.lengths))?;
        if let Some(tokens) = &self.tokens {
            writeln!(
                f,
                "\nlengths (tokens, {} with its chat template)",
                tokens.model
            )?;
            write!(f, "{}", length_table(&tokens.lengths))?;
            writeln!(
                f,
                "  limits max_length = {}, max_prompt_length = {}: {} fit, {} truncated, {} dropped",
                tokens.max_length, tokens.max_prompt_length, tokens.fit.kept, tokens.fit.truncated, tokens.fit.dropped
            )?;
        }
        Ok(())
    }

    /// Invalid records by reason, and the first of them.
    fn write_invalid(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.invalid.total() == 0 {
            writeln!(f, "\ninvalid records: none")?;
        } else {
            writeln!(f, "\ninvalid records: {} (skipped)", self.invalid.total())?;
            let mut reasons = Table::new(&["reason", "records"]);
            for (reason, count) in &self.invalid.0 {
                reasons.row(vec![reason.as_str().into(), count.to_string()]);
            }
            write!(f, "{reasons}")?;
            writeln!(f, "  first:")?;
            for issue in &self.issues {
                writeln!(f, "    {issue}")?;
            }
        }
        Ok(())
    }

    /// The partition preview.
    fn write_clients(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(preview) = &self.clients {
            writeln!(
                f,
                "\nclients ({}, {} clients)",
                preview.partitioner,
                preview.clients.len()
            )?;
            let mut clients = Table::new(&[
                "client",
                "items",
                "pairs",
                "desirable",
                "undesirable",
                "answers",
            ]);
            for (c, counts) in preview.clients.iter().enumerate() {
                clients.row(vec![
                    c.to_string(),
                    counts.items().to_string(),
                    counts.pairs.to_string(),
                    counts.desirable.to_string(),
                    counts.undesirable.to_string(),
                    counts.answers().to_string(),
                ]);
            }
            write!(f, "{clients}")?;
            writeln!(
                f,
                "  pairs intact (whole, or both answers on one client): {} of {} ({})",
                preview.pairs_intact,
                preview.n_pairs,
                percent(preview.pairs_intact, preview.n_pairs)
            )?;
            for (name, value) in &preview.metrics {
                writeln!(f, "  {name} = {value}")?;
            }
        }
        Ok(())
    }
}

/// Length percentiles per part (prompt, answers).
fn length_table(lengths: &[(&str, Percentiles)]) -> Table {
    let mut table = Table::new(&["part", "n", "p50", "p90", "p99", "max"]);
    for (name, p) in lengths {
        table.row(vec![
            (*name).into(),
            p.n.to_string(),
            p.p50.to_string(),
            p.p90.to_string(),
            p.p99.to_string(),
            p.max.to_string(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let p = Percentiles::of((1..=100).rev().collect()).unwrap();
        assert_eq!((p.n, p.p50, p.p90, p.p99, p.max), (100, 50, 90, 99, 100));
        let p = Percentiles::of(vec![7]).unwrap();
        assert_eq!((p.p50, p.p99, p.max), (7, 7, 7));
        assert_eq!(Percentiles::of(vec![]), None);
    }
}

//! Reports of one sweep per setting of the same experiment, quality against what the setting
//! costs or saves: `fedpref report --privacy` (the ε spent, [`crate::privacy`]) and
//! `--communication` (the megabytes sent, [`crate::communication`]). The table has one row per
//! setting and per benchmark one column per method; the figure draws each benchmark's headline
//! against the cost.
//!
//! ```text
//! <out>/index.md, index.html, tables/<name>.{csv,parquet,md,tex}, figures/<name>-*.{svg,png}
//! ```

use std::path::Path;

use crate::{
    figures::{
        self,
        tradeoff::{CostAxis, TradeoffCurve},
    },
    order,
    report::{palette, result_figures, write_table, Document, Report},
    results::{results_observations, Source},
    table::{Group, Layout, Observation, Table},
    Result, Sweep,
};

/// One setting: a sweep and its cost.
#[derive(Debug, Clone)]
pub struct Setting<'a> {
    /// The sweep.
    pub sweep: &'a Sweep,
    /// What it costs on the figure's axis; `None` for a setting without the cost (no DP).
    pub cost: Option<f64>,
    /// Its row label.
    pub label: String,
}

/// The words of one kind of tradeoff report.
#[derive(Debug, Clone)]
pub struct Tradeoff {
    /// The page's title.
    pub heading: String,
    /// The table's title, caption and row header.
    pub title: String,
    /// See [`Self::title`].
    pub caption: String,
    /// See [`Self::title`].
    pub row_header: String,
    /// The table's file name, and the prefix of the per-benchmark figures.
    pub name: String,
    /// The curve's axis.
    pub axis: CostAxis,
}

/// The table: rows the settings (in the order given), per benchmark one column per method.
pub fn tradeoff_table(settings: &[Setting<'_>], tradeoff: &Tradeoff) -> (Table, Source) {
    let mut groups: Vec<Group> = Vec::new();
    let mut observations: Vec<Observation> = Vec::new();
    let mut sources = Vec::new();
    for setting in settings {
        let (sweep_groups, sweep_observations, source) = results_observations(setting.sweep);
        sources.push(source);
        for group in sweep_groups {
            let known = groups
                .iter()
                .any(|g| g.benchmark == group.benchmark && g.metric == group.metric);
            if !known {
                groups.push(group);
            }
        }
        observations.extend(sweep_observations.into_iter().map(|o| Observation {
            row: setting.label.clone(),
            ..o
        }));
    }
    groups.sort_by(|x, y| order::benchmarks(&x.benchmark, &y.benchmark));
    let methods = order::sorted(
        settings
            .iter()
            .flat_map(|s| s.sweep.runs.iter().map(|r| r.method.clone())),
        order::methods,
    );
    let source = if sources.contains(&Source::Evals) {
        Source::Evals
    } else {
        sources.first().copied().unwrap_or(Source::Training)
    };
    let layout = Layout {
        title: tradeoff.title.clone(),
        caption: tradeoff.caption.clone(),
        row_header: tradeoff.row_header.clone(),
        rows: settings.iter().map(|s| s.label.clone()).collect(),
        groups,
        methods,
        mark_best: true,
        intervals: true,
        // Settings share no training: nothing to pair.
        baseline: None,
    };
    (Table::build(layout, &observations), source)
}

/// Writes the report of `settings` into `out`, with `grid` (a header and one row per setting)
/// describing them.
///
/// # Errors
/// [`crate::Error::Io`], [`crate::Error::Frame`] or [`crate::Error::Figure`] naming the file.
pub fn write_tradeoff_report(
    settings: &[Setting<'_>],
    tradeoff: &Tradeoff,
    grid: (&[&str], &[Vec<String>]),
    out: &Path,
) -> Result<Report> {
    std::fs::create_dir_all(out).map_err(|e| crate::Error::io(out, e))?;
    let (table, source) = tradeoff_table(settings, tradeoff);
    let tables = write_table(&table, &out.join("tables"), &tradeoff.name)?;
    let sweeps: Vec<&Sweep> = settings.iter().map(|s| s.sweep).collect();
    let palette = palette(&sweeps);
    let figure_dir = out.join("figures");
    let mut figure_files = Vec::new();
    let costs: Vec<(String, Option<f64>)> =
        settings.iter().map(|s| (s.label.clone(), s.cost)).collect();
    let curve = TradeoffCurve::from_table(&table, &costs, &palette, tradeoff.axis.clone());
    if let Some(curve) = curve {
        figure_files.push(figures::save(&curve, &figure_dir)?);
    }
    let color = |method: &str| palette.color(method);
    let prefix = format!("{}-", tradeoff.name);
    figure_files.extend(result_figures(
        &table,
        &color,
        source,
        &figure_dir,
        &prefix,
    )?);
    let mut doc = Document::new(&tradeoff.heading, out);
    doc.heading("Settings");
    doc.grid(grid.0, grid.1);
    doc.heading("Results");
    doc.table(&table);
    doc.heading("Figures");
    for files in &figure_files {
        doc.figure(files)?;
    }
    let problems: Vec<crate::Problem> = sweeps
        .iter()
        .flat_map(|s| s.problems.iter().cloned())
        .collect();
    doc.problems(&problems);
    doc.into_report(tables, figure_files, &table)
}

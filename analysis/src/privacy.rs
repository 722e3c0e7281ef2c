//! `fedpref report --privacy DIR`: the sweeps under DIR, one per privacy setting of the same
//! experiment (`configs/dp-sweep.toml`), side by side. The table has one row per setting (ε
//! spent after the last round, or no DP) and per benchmark one column per method; the figure
//! draws each benchmark's headline against ε, one line per method with its 95 % interval, and
//! the run without DP as a dashed level.
//!
//! ```text
//! <out>/index.md, index.html, tables/privacy.{csv,parquet,md,tex}, figures/privacy-*.{svg,png}
//! ```

use std::path::Path;

use crate::{
    figures::{self, privacy::PrivacyCurve},
    frame::floats,
    order,
    report::{palette, result_figures, write_table, Document, Report},
    results::{results_observations, Source},
    summary::config_values,
    table::{Group, Layout, Observation, Table},
    Result, Sweep,
};

/// One privacy setting: a sweep and what it spent.
#[derive(Debug, Clone)]
pub struct Setting<'a> {
    /// The sweep.
    pub sweep: &'a Sweep,
    /// ε after its last round (the largest over its runs); `None` without DP.
    pub epsilon: Option<f64>,
    /// Its row label: `ε = 2.69 (z = 1.5)`, or `no DP`.
    pub label: String,
}

/// The settings of `sweeps`, strongest privacy (smallest ε) first and no DP last.
pub fn settings(sweeps: &[Sweep]) -> Vec<Setting<'_>> {
    let mut settings: Vec<Setting<'_>> = sweeps
        .iter()
        .map(|sweep| {
            let epsilon = floats(&sweep.rounds, "privacy/epsilon")
                .into_iter()
                .flatten()
                .reduce(f64::max);
            let noise = config_values(sweep)
                .get("privacy.noise_multiplier")
                .cloned();
            let label = match (epsilon, noise) {
                (Some(eps), Some(z)) => format!("ε = {eps:.2} (z = {z})"),
                (Some(eps), None) => format!("ε = {eps:.2}"),
                (None, _) => "no DP".to_owned(),
            };
            Setting {
                sweep,
                epsilon,
                label,
            }
        })
        .collect();
    settings.sort_by(|a, b| {
        let key = |s: &Setting<'_>| s.epsilon.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b))
    });
    settings
}

/// The privacy table: rows the settings, per benchmark one column per method.
pub fn privacy_table(settings: &[Setting<'_>]) -> (Table, Source) {
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
        title: "Quality against privacy".into(),
        caption: "Each run's last evaluation (or last round of training metrics without one), \
                  one row per privacy setting (ε spent after the last round at the configured δ); \
                  mean with its 95 % percentile bootstrap interval over questions (and seeds); \
                  no tests across settings; best per row and benchmark in bold"
            .into(),
        row_header: "Privacy".into(),
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

/// Writes the privacy report of `sweeps` (one per setting) into `out`.
///
/// # Errors
/// [`crate::Error::Io`], [`crate::Error::Frame`] or [`crate::Error::Figure`] naming the file.
pub fn write_privacy_report(sweeps: &[Sweep], out: &Path) -> Result<Report> {
    std::fs::create_dir_all(out).map_err(|e| crate::Error::io(out, e))?;
    let settings = settings(sweeps);
    let (table, source) = privacy_table(&settings);
    let tables = write_table(&table, &out.join("tables"), "privacy")?;
    let refs: Vec<&Sweep> = sweeps.iter().collect();
    let palette = palette(&refs);
    let figure_dir = out.join("figures");
    let mut figure_files = Vec::new();
    let epsilons: Vec<(String, Option<f64>)> = settings
        .iter()
        .map(|s| (s.label.clone(), s.epsilon))
        .collect();
    if let Some(curve) = PrivacyCurve::from_table(&table, &epsilons, &palette) {
        figure_files.push(figures::save(&curve, &figure_dir)?);
    }
    let color = |method: &str| palette.color(method);
    figure_files.extend(result_figures(
        &table,
        &color,
        source,
        &figure_dir,
        "privacy-",
    )?);
    let mut doc = Document::new("fedpref: quality against privacy", out);
    let rows: Vec<Vec<String>> = settings
        .iter()
        .map(|s| {
            let values = config_values(s.sweep);
            let get = |key: &str| values.get(key).cloned().unwrap_or_else(|| "-".into());
            vec![
                s.sweep.name.clone(),
                s.label.clone(),
                get("privacy.clip_norm"),
                get("privacy.delta"),
                s.sweep.runs.len().to_string(),
            ]
        })
        .collect();
    doc.heading("Settings");
    doc.grid(&["Sweep", "Privacy", "Clip norm", "δ", "Runs"], &rows);
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

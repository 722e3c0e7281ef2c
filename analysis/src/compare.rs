//! `fedpref report --compare A B`: two sweeps side by side. The results table puts, inside
//! each benchmark group, every method twice (A then B); the training curves overlay B's
//! methods dashed on A's; the setup lists the config keys whose values differ.
//!
//! ```text
//! <out>/index.md, index.html, tables/compare.{csv,parquet,md,tex}, figures/compare-*.{svg,png}
//! ```

use std::path::Path;

use plotters::style::RGBColor;

use crate::{
    figures::{self, training::Training, Figure, FigureFiles},
    judge, order,
    report::{palette, result_figures, write_table, Document, Report},
    results::{results_observations, Source},
    summary::{config_values, summarize},
    table::{Group, Layout, Observation, Table},
    Result, Sweep,
};

/// Separates method and sweep label in the comparison table's method keys.
const SEPARATOR: char = '\u{1f}';

/// The labels of two sweeps: their names, made distinct when equal.
pub fn labels(a: &Sweep, b: &Sweep) -> (String, String) {
    if a.name == b.name {
        (format!("{} (A)", a.name), format!("{} (B)", b.name))
    } else {
        (a.name.clone(), b.name.clone())
    }
}

/// The comparison table: rows aggregators, per group each method of A then of B.
pub fn comparison_table(a: &Sweep, b: &Sweep) -> (Table, Source) {
    let (label_a, label_b) = labels(a, b);
    let mut groups: Vec<Group> = Vec::new();
    let mut observations: Vec<Observation> = Vec::new();
    let mut sources = Vec::new();
    for (sweep, label) in [(a, &label_a), (b, &label_b)] {
        let (sweep_groups, sweep_observations, source) = results_observations(sweep);
        sources.push(source);
        for group in sweep_groups {
            if !groups
                .iter()
                .any(|g| g.benchmark == group.benchmark && g.metric == group.metric)
            {
                groups.push(group);
            }
        }
        observations.extend(sweep_observations.into_iter().map(|o| Observation {
            method: format!("{}{SEPARATOR}{label}", o.method),
            ..o
        }));
    }
    groups.sort_by(|x, y| order::benchmarks(&x.benchmark, &y.benchmark));
    let judges = [(judge::status(a), &label_a), (judge::status(b), &label_b)];
    for group in &mut groups {
        let notes: Vec<String> = judges
            .iter()
            .filter_map(|(status, label)| {
                Some(format!(
                    "{} in {label}",
                    status.header_note(&group.benchmark)?
                ))
            })
            .collect();
        if !notes.is_empty() {
            group.label = format!("{} ({})", group.label, notes.join("; "));
        }
    }
    let methods = order::sorted(
        a.runs.iter().chain(&b.runs).map(|r| r.method.clone()),
        order::methods,
    );
    let keys: Vec<String> = methods
        .iter()
        .flat_map(|m| {
            [
                format!("{m}{SEPARATOR}{label_a}"),
                format!("{m}{SEPARATOR}{label_b}"),
            ]
        })
        .collect();
    let rows = order::sorted(
        a.runs.iter().chain(&b.runs).map(|r| r.aggregator.clone()),
        order::aggregators,
    );
    let layout = Layout {
        title: format!("{label_a} vs {label_b}"),
        caption: format!(
            "Each run's {}; mean over seeds with its 95 % percentile bootstrap interval (over questions, and seeds then questions within each seed, where runs have item scores; over seeds where a run gives one value); no tests across sweeps; best per row and group in bold across both sweeps",
            if sources.iter().all(|s| *s == Source::Training) { "last round of training metrics" } else { "last evaluation (or last round of training metrics without one)" }
        ),
        row_header: "Aggregator".into(),
        rows,
        groups,
        methods: keys,
        mark_best: true,
        intervals: true,
        // Runs of two sweeps share no training: nothing to pair.
        baseline: None,
    };
    let mut table = Table::build(layout, &observations);
    table.method_labels = table
        .methods
        .iter()
        .map(|key| {
            let (method, label) = key.split_once(SEPARATOR).unwrap_or((key, ""));
            format!("{} ({label})", order::method_label(method))
        })
        .collect();
    let source = if sources.contains(&Source::Evals) {
        Source::Evals
    } else {
        sources[0]
    };
    (table, source)
}

/// Blends `color` half-way to white (sweep B's bars).
fn lighter(color: RGBColor) -> RGBColor {
    let mix = |c: u8| ((u16::from(c) + 255) / 2) as u8;
    RGBColor(mix(color.0), mix(color.1), mix(color.2))
}

/// Writes the comparison of `a` and `b` into `out`.
///
/// # Errors
/// [`crate::Error::Io`], [`crate::Error::Frame`] or [`crate::Error::Figure`] naming the file.
pub fn write_comparison(a: &Sweep, b: &Sweep, out: &Path) -> Result<Report> {
    std::fs::create_dir_all(out).map_err(|e| crate::Error::io(out, e))?;
    let (label_a, label_b) = labels(a, b);
    let (table, source) = comparison_table(a, b);
    let tables = write_table(&table, &out.join("tables"), "compare")?;
    let palette = palette(&[a, b]);
    let figure_dir = out.join("figures");
    let second = format!("{SEPARATOR}{label_b}");
    let color = |key: &str| {
        let method = key.split(SEPARATOR).next().unwrap_or(key);
        if key.ends_with(&second) {
            lighter(palette.color(method))
        } else {
            palette.color(method)
        }
    };
    let mut figure_files: Vec<FigureFiles> = Vec::new();
    for training in Training::from_sweeps(&[a, b], &palette) {
        figure_files.push(figures::save(
            &Renamed {
                inner: training,
                prefix: "compare-",
            },
            &figure_dir,
        )?);
    }
    figure_files.extend(result_figures(
        &table,
        &color,
        source,
        &figure_dir,
        "compare-",
    )?);

    let mut doc = Document::new(&format!("fedpref comparison: {label_a} vs {label_b}"), out);
    doc.paragraph(&format!(
        "A = {} ({} runs), B = {} ({} runs).",
        a.root.display(),
        a.runs.len(),
        b.root.display(),
        b.runs.len()
    ));
    doc.heading("Setup");
    let (values_a, values_b) = (config_values(a), config_values(b));
    let keys: std::collections::BTreeSet<&String> =
        values_a.keys().chain(values_b.keys()).collect();
    let unset = "(unset)".to_owned();
    let differing: Vec<Vec<String>> = keys
        .into_iter()
        .filter(|k| {
            values_a.get(*k) != values_b.get(*k)
                && k.as_str() != "experiment.name"
                && k.as_str() != "experiment.output_dir"
        })
        .map(|k| {
            vec![
                k.clone(),
                values_a.get(k).unwrap_or(&unset).clone(),
                values_b.get(k).unwrap_or(&unset).clone(),
            ]
        })
        .collect();
    if differing.is_empty() {
        doc.paragraph("Both sweeps have the same settings (apart from their names).");
    } else {
        doc.grid(
            &[
                "Config key that differs",
                label_a.as_str(),
                label_b.as_str(),
            ],
            &differing,
        );
    }
    for (sweep, label) in [(a, &label_a), (b, &label_b)] {
        doc.heading(&format!("Setup of {label}"));
        doc.settings(&summarize(sweep));
    }
    for (sweep, label) in [(a, &label_a), (b, &label_b)] {
        doc.judge(&judge::status(sweep), Some(label));
    }
    doc.heading("Results side by side");
    doc.table(&table);
    doc.heading("Figures");
    for files in &figure_files {
        doc.figure(files)?;
    }
    let problems: Vec<crate::Problem> = a.problems.iter().chain(&b.problems).cloned().collect();
    doc.problems(&problems);
    doc.into_report(tables, figure_files, &table)
}

/// A figure saved under a prefixed name.
struct Renamed<F> {
    inner: F,
    prefix: &'static str,
}

impl<F: Figure> Figure for Renamed<F> {
    fn name(&self) -> String {
        format!("{}{}", self.prefix, self.inner.name())
    }

    fn caption(&self) -> String {
        format!("{} Dashed: the second sweep.", self.inner.caption())
    }

    fn size_in(&self) -> (f64, f64) {
        self.inner.size_in()
    }

    fn draw<DB: plotters::prelude::DrawingBackend>(
        &self,
        area: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
        scale: figures::Scale,
    ) -> std::result::Result<(), String> {
        self.inner.draw(area, scale)
    }
}

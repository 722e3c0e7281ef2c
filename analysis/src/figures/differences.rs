//! Each method minus the baseline (DPO), from the results table's paired comparisons: a panel
//! per benchmark metric, aggregators along the x axis, one bar per compared method at its mean
//! difference over matched seeds and questions, with the paired 95 % bootstrap interval as
//! error bar and the significance mark above it. Drawn by [`super::bars`] (`differences`).

use plotters::style::RGBColor;

use super::bars::{legend_entries, marks_phrase, Bar, BarPanel, BarSeries, Bars};
use crate::{order, table::Table};

/// The differences figure of `table`; `None` without comparisons.
pub fn differences(table: &Table, color: &dyn Fn(&str) -> RGBColor, name: &str) -> Option<Bars> {
    let baseline = table.baseline.as_deref()?;
    let baseline_label = order::method_label(baseline);
    let compared: Vec<usize> = (0..table.methods.len())
        .filter(|&m| table.methods[m] != baseline)
        .collect();
    let panels: Vec<BarPanel> = table
        .groups
        .iter()
        .enumerate()
        .filter_map(|(g, group)| {
            let series: Vec<BarSeries> = compared
                .iter()
                .map(|&m| BarSeries {
                    color: color(&table.methods[m]),
                    values: table
                        .cells
                        .iter()
                        .map(|row| difference(row[g][m].as_ref()))
                        .collect(),
                })
                .collect();
            series
                .iter()
                .any(|s| s.values.iter().any(Option::is_some))
                .then(|| BarPanel {
                    title: group.label.clone(),
                    y_label: format!("Difference from {baseline_label}"),
                    x_label: table.row_header.clone(),
                    categories: table.rows.clone(),
                    series,
                    share: false,
                })
        })
        .collect();
    if panels.is_empty() {
        return None;
    }
    Some(Bars {
        name: name.to_owned(),
        title: format!("Difference from {baseline_label} (paired)"),
        caption: format!(
            "Bars: each method's mean difference from {baseline_label} on the same seeds and \
             questions (method − {baseline_label}); error bars: 95 % paired bootstrap interval{}.",
            marks_phrase(table)
        ),
        panels,
        legend: legend_entries(table, color, |m| m != baseline),
    })
}

/// The bar of one cell's comparison, if it has one.
fn difference(cell: Option<&crate::table::Cell>) -> Option<Bar> {
    let versus = cell?.versus?;
    Some(Bar {
        value: versus.paired.difference,
        range: versus.paired.interval.map(|i| (i.low, i.high)),
        mark: versus.mark,
    })
}

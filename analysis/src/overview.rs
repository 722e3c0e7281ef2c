//! Per column group of the results table (a benchmark metric): how many questions and seeds its
//! cells rest on, and which methods differ significantly from the baseline, in which row.

use crate::{
    order,
    table::{Cell, Table, BASELINE},
};

/// The header of [`rows`].
pub fn columns() -> [String; 4] {
    [
        "Benchmark".into(),
        "Questions".into(),
        "Seeds".into(),
        format!("Against {}", order::method_label(BASELINE)),
    ]
}

/// One row per group of `table`.
pub fn rows(table: &Table) -> Vec<Vec<String>> {
    (0..table.groups.len())
        .map(|g| {
            let cells: Vec<&Cell> = table
                .cells
                .iter()
                .flat_map(|row| row[g].iter().flatten())
                .collect();
            let questions = cells.iter().map(|c| c.questions).max().unwrap_or(0);
            let seeds = cells.iter().map(|c| c.stat.n).max().unwrap_or(0);
            vec![
                table.groups[g].label.clone(),
                if questions == 0 {
                    "— (one value per run)".to_owned()
                } else {
                    questions.to_string()
                },
                seeds.to_string(),
                against(table, g),
            ]
        })
        .collect()
}

/// Which methods differ from the baseline in group `g`, per row.
fn against(table: &Table, g: usize) -> String {
    let Some(baseline) = &table.baseline else {
        return format!(
            "no comparison (no {} values)",
            order::method_label(BASELINE)
        );
    };
    let several_rows = table.rows.len() > 1;
    let mut found = Vec::new();
    for (row, cells) in table.rows.iter().zip(&table.cells) {
        let marked: Vec<String> = cells[g]
            .iter()
            .zip(&table.method_labels)
            .filter_map(|(cell, label)| Some(format!("{label} {}", cell.as_ref()?.mark()?.word())))
            .collect();
        if !marked.is_empty() {
            let place = if several_rows {
                format!(" ({row})")
            } else {
                String::new()
            };
            found.push(format!("{}{place}", marked.join(", ")));
        }
    }
    if found.is_empty() {
        format!(
            "no method differs significantly from {}",
            order::method_label(baseline)
        )
    } else {
        found.join("; ")
    }
}

//! The paper's table layout: rows (aggregators, or rounds), column groups (one per benchmark
//! metric), and inside each group one column per method, every cell mean ± std over seeds
//! with the best method of each row and group marked.
//!
//! A [`Table`] is built from [`Observation`]s (one value per run) by [`Table::build`], then
//! rendered ([`render`]: Markdown, LaTeX booktabs, HTML) or written as a long frame ([`write`]:
//! CSV, Parquet).

pub mod render;
pub mod write;

use std::collections::HashMap;

use crate::{order, Stat};

/// One run's value for one table cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Row key (an aggregator; `fedavg · round 2`).
    pub row: String,
    /// Benchmark of the column group (`train` for training metrics).
    pub benchmark: String,
    /// Metric of the column group.
    pub metric: String,
    /// Method (the column inside the group).
    pub method: String,
    /// The value.
    pub value: f64,
}

/// A column group: one benchmark metric, one column per method.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Benchmark name.
    pub benchmark: String,
    /// Metric name.
    pub metric: String,
    /// Header text.
    pub label: String,
    /// Direction for marking the best value.
    pub higher_is_better: bool,
}

impl Group {
    /// A group labelled `label`, its direction from the metric's name.
    pub fn new(benchmark: &str, metric: &str, label: impl Into<String>) -> Self {
        Group {
            benchmark: benchmark.to_owned(),
            metric: metric.to_owned(),
            label: label.into(),
            higher_is_better: order::higher_is_better(metric),
        }
    }
}

/// A summarized cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// Mean ± std over the observations (seeds).
    pub stat: Stat,
    /// Best of its row within its group.
    pub best: bool,
}

/// A table: `cells[row][group][method]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Title (a heading in the report).
    pub title: String,
    /// What the numbers are (printed under the table).
    pub caption: String,
    /// Header of the row-label column.
    pub row_header: String,
    /// Row keys, in display order.
    pub rows: Vec<String>,
    /// Column groups, in display order.
    pub groups: Vec<Group>,
    /// Method keys, in display order.
    pub methods: Vec<String>,
    /// Method headers (`DPO`).
    pub method_labels: Vec<String>,
    /// The cells.
    pub cells: Vec<Vec<Vec<Option<Cell>>>>,
}

/// What to build: the layout of a table, its values come from observations.
#[derive(Debug, Clone)]
pub struct Layout {
    /// See [`Table::title`].
    pub title: String,
    /// See [`Table::caption`].
    pub caption: String,
    /// See [`Table::row_header`].
    pub row_header: String,
    /// See [`Table::rows`].
    pub rows: Vec<String>,
    /// See [`Table::groups`].
    pub groups: Vec<Group>,
    /// See [`Table::methods`].
    pub methods: Vec<String>,
    /// Mark the best method of each row and group (only where two or more have values).
    pub mark_best: bool,
}

impl Table {
    /// Summarizes `observations` into `layout`'s cells; observations outside the layout are
    /// ignored, cells without observations stay empty.
    pub fn build(layout: Layout, observations: &[Observation]) -> Table {
        let mut values: HashMap<(usize, usize, usize), Vec<f64>> = HashMap::new();
        let row_index: HashMap<&str, usize> = layout
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.as_str(), i))
            .collect();
        let method_index: HashMap<&str, usize> = layout
            .methods
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), i))
            .collect();
        for observation in observations {
            let group = layout.groups.iter().position(|g| {
                g.benchmark == observation.benchmark && g.metric == observation.metric
            });
            if let (Some(&row), Some(group), Some(&method)) = (
                row_index.get(observation.row.as_str()),
                group,
                method_index.get(observation.method.as_str()),
            ) {
                values
                    .entry((row, group, method))
                    .or_default()
                    .push(observation.value);
            }
        }
        let mut cells =
            vec![vec![vec![None; layout.methods.len()]; layout.groups.len()]; layout.rows.len()];
        for ((row, group, method), values) in values {
            cells[row][group][method] = Stat::of(&values).map(|stat| Cell { stat, best: false });
        }
        if layout.mark_best {
            for row in &mut cells {
                for (group, cells) in layout.groups.iter().zip(row.iter_mut()) {
                    mark_best(cells, group.higher_is_better);
                }
            }
        }
        Table {
            title: layout.title,
            caption: layout.caption,
            row_header: layout.row_header,
            rows: layout.rows,
            groups: layout.groups,
            method_labels: layout
                .methods
                .iter()
                .map(|m| order::method_label(m))
                .collect(),
            methods: layout.methods,
            cells,
        }
    }

    /// The cell at (`row`, `benchmark`/`metric`, `method`), if it has values.
    pub fn cell(&self, row: &str, benchmark: &str, metric: &str, method: &str) -> Option<Cell> {
        let row = self.rows.iter().position(|r| r == row)?;
        let group = self
            .groups
            .iter()
            .position(|g| g.benchmark == benchmark && g.metric == metric)?;
        let method = self.methods.iter().position(|m| m == method)?;
        self.cells[row][group][method]
    }

    /// Whether no cell has a value.
    pub fn is_empty(&self) -> bool {
        self.cells.iter().flatten().flatten().all(Option::is_none)
    }
}

/// Marks the best mean among `cells` (ties all marked), when at least two have values and
/// not all are equal.
fn mark_best(cells: &mut [Option<Cell>], higher_is_better: bool) {
    let means: Vec<f64> = cells.iter().flatten().map(|c| c.stat.mean).collect();
    if means.len() < 2 {
        return;
    }
    let best = if higher_is_better {
        means.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    } else {
        means.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let is_best = |mean: f64| (mean - best).abs() <= 1e-12 * best.abs().max(1.0);
    if means.iter().all(|m| is_best(*m)) {
        // All equal: no method is better.
        return;
    }
    for cell in cells.iter_mut().flatten() {
        cell.best = is_best(cell.stat.mean);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(row: &str, metric: &str, method: &str, value: f64) -> Observation {
        Observation {
            row: row.into(),
            benchmark: "b".into(),
            metric: metric.into(),
            method: method.into(),
            value,
        }
    }

    fn layout(methods: &[&str]) -> Layout {
        Layout {
            title: "t".into(),
            caption: "c".into(),
            row_header: "Aggregator".into(),
            rows: vec!["fedavg".into(), "fedprox".into()],
            groups: vec![
                Group::new("b", "accuracy", "Acc"),
                Group::new("b", "loss", "Loss"),
            ],
            methods: methods.iter().map(|m| m.to_string()).collect(),
            mark_best: true,
        }
    }

    #[test]
    fn cells_summarize_and_best_follows_the_direction() {
        let observations = vec![
            observation("fedavg", "accuracy", "dpo", 0.5),
            observation("fedavg", "accuracy", "dpo", 0.7),
            observation("fedavg", "accuracy", "kto", 0.8),
            observation("fedavg", "loss", "dpo", 0.3),
            observation("fedavg", "loss", "kto", 0.2),
            observation("fedprox", "accuracy", "dpo", 0.9),
            observation("nowhere", "accuracy", "dpo", 0.1),
        ];
        let table = Table::build(layout(&["dpo", "kto", "ktor"]), &observations);
        let dpo = table.cell("fedavg", "b", "accuracy", "dpo").unwrap();
        assert!((dpo.stat.mean - 0.6).abs() < 1e-12 && !dpo.best);
        assert!(table.cell("fedavg", "b", "accuracy", "kto").unwrap().best);
        assert!(
            table.cell("fedavg", "b", "loss", "kto").unwrap().best,
            "lower loss is better"
        );
        assert!(!table.cell("fedavg", "b", "loss", "dpo").unwrap().best);
        assert_eq!(table.cell("fedavg", "b", "accuracy", "ktor"), None);
        // A lone value in its row and group is not marked.
        assert!(!table.cell("fedprox", "b", "accuracy", "dpo").unwrap().best);
        assert_eq!(table.method_labels, ["DPO", "KTO", "KTOR"]);
    }

    #[test]
    fn ties_are_all_marked_unless_all_are_equal() {
        let observations = vec![
            observation("fedavg", "accuracy", "dpo", 0.5),
            observation("fedavg", "accuracy", "kto", 0.5),
            observation("fedavg", "accuracy", "ktor", 0.25),
            observation("fedavg", "loss", "dpo", 0.5),
            observation("fedavg", "loss", "kto", 0.5),
        ];
        let table = Table::build(layout(&["dpo", "kto", "ktor"]), &observations);
        assert!(table.cell("fedavg", "b", "accuracy", "dpo").unwrap().best);
        assert!(table.cell("fedavg", "b", "accuracy", "kto").unwrap().best);
        assert!(!table.cell("fedavg", "b", "accuracy", "ktor").unwrap().best);
        assert!(
            !table.cell("fedavg", "b", "loss", "dpo").unwrap().best,
            "all equal: none is best"
        );
    }
}

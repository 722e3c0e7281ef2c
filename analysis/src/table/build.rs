//! [`Table::build`]: observations gathered into one [`Sample`] per cell, each summarized (mean
//! over seeds, bootstrap interval), the best of each row and group marked, and every method
//! compared with the baseline ([`super::versus`]).

use std::collections::HashMap;

use super::{versus, Cell, Layout, Observation, Table};
use crate::{
    order,
    stat::{Bootstrap, Sample, Stat},
};

/// The samples of a table: `samples[row][group][method]`.
pub(super) type Samples = Vec<Vec<Vec<Sample>>>;

impl Table {
    /// Summarizes `observations` into `layout`'s cells; observations outside the layout are
    /// ignored, cells without observations stay empty.
    pub fn build(layout: Layout, observations: &[Observation]) -> Table {
        let samples = gather(&layout, observations);
        let bootstrap = Bootstrap::default();
        let mut cells: Vec<Vec<Vec<Option<Cell>>>> = samples
            .iter()
            .map(|groups| {
                groups
                    .iter()
                    .map(|methods| {
                        methods
                            .iter()
                            .map(|s| summarize(s, layout.intervals.then_some(&bootstrap)))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        if layout.mark_best {
            for row in &mut cells {
                for (group, cells) in layout.groups.iter().zip(row.iter_mut()) {
                    mark_best(cells, group.higher_is_better);
                }
            }
        }
        let baseline = layout
            .baseline
            .as_ref()
            .and_then(|b| layout.methods.iter().position(|m| m == b));
        let compared = baseline
            .is_some_and(|b| versus::compare(&layout.groups, &samples, &mut cells, b, &bootstrap));
        Table {
            title: layout.title,
            caption: layout.caption,
            legend: if compared {
                versus::legend(&order::method_label(
                    layout.baseline.as_deref().unwrap_or(""),
                ))
            } else {
                String::new()
            },
            row_header: layout.row_header,
            rows: layout.rows,
            groups: layout.groups,
            method_labels: layout
                .methods
                .iter()
                .map(|m| order::method_label(m))
                .collect(),
            methods: layout.methods,
            baseline: if compared { layout.baseline } else { None },
            cells,
        }
    }
}

/// Each observation into the sample of its cell.
fn gather(layout: &Layout, observations: &[Observation]) -> Samples {
    let index = |keys: &[String]| -> HashMap<String, usize> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect()
    };
    let (rows, methods) = (index(&layout.rows), index(&layout.methods));
    let mut samples = vec![
        vec![vec![Sample::default(); layout.methods.len()]; layout.groups.len()];
        layout.rows.len()
    ];
    for observation in observations {
        let group = layout
            .groups
            .iter()
            .position(|g| g.benchmark == observation.benchmark && g.metric == observation.metric);
        if let (Some(&row), Some(group), Some(&method)) = (
            rows.get(&observation.row),
            group,
            methods.get(&observation.method),
        ) {
            samples[row][group][method].push(
                observation.seed,
                observation.question.as_deref(),
                observation.value,
            );
        }
    }
    samples
}

/// A cell from its sample; `None` when empty.
fn summarize(sample: &Sample, bootstrap: Option<&Bootstrap>) -> Option<Cell> {
    let stat = Stat::of(&sample.seed_means())?;
    Some(Cell {
        stat,
        interval: bootstrap.and_then(|b| b.interval(&sample.clusters())),
        questions: sample.questions(),
        values: sample.len(),
        versus: None,
        best: false,
    })
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
    use crate::table::Group;

    fn observation(row: &str, metric: &str, method: &str, seed: u64, value: f64) -> Observation {
        Observation {
            row: row.into(),
            benchmark: "b".into(),
            metric: metric.into(),
            method: method.into(),
            seed,
            question: None,
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
            intervals: false,
            baseline: None,
        }
    }

    #[test]
    fn cells_summarize_and_best_follows_the_direction() {
        let observations = vec![
            observation("fedavg", "accuracy", "dpo", 0, 0.5),
            observation("fedavg", "accuracy", "dpo", 1, 0.7),
            observation("fedavg", "accuracy", "kto", 0, 0.8),
            observation("fedavg", "loss", "dpo", 0, 0.3),
            observation("fedavg", "loss", "kto", 0, 0.2),
            observation("fedprox", "accuracy", "dpo", 0, 0.9),
            observation("nowhere", "accuracy", "dpo", 0, 0.1),
        ];
        let table = Table::build(layout(&["dpo", "kto", "ktor"]), &observations);
        let dpo = table.cell("fedavg", "b", "accuracy", "dpo").unwrap();
        assert!((dpo.stat.mean - 0.6).abs() < 1e-12 && !dpo.best);
        assert_eq!((dpo.stat.n, dpo.values, dpo.questions), (2, 2, 0));
        assert_eq!(dpo.interval, None, "no intervals asked for");
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
        assert!(table.legend.is_empty() && table.baseline.is_none());
    }

    #[test]
    fn ties_are_all_marked_unless_all_are_equal() {
        let observations = vec![
            observation("fedavg", "accuracy", "dpo", 0, 0.5),
            observation("fedavg", "accuracy", "kto", 0, 0.5),
            observation("fedavg", "accuracy", "ktor", 0, 0.25),
            observation("fedavg", "loss", "dpo", 0, 0.5),
            observation("fedavg", "loss", "kto", 0, 0.5),
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

    #[test]
    fn question_scores_give_intervals_over_questions() {
        let mut layout = layout(&["dpo"]);
        layout.intervals = true;
        let observations: Vec<Observation> = [0.0, 1.0]
            .iter()
            .enumerate()
            .map(|(q, v)| Observation {
                question: Some(format!("q{q}")),
                ..observation("fedavg", "accuracy", "dpo", 0, *v)
            })
            .collect();
        let table = Table::build(layout, &observations);
        let cell = table.cell("fedavg", "b", "accuracy", "dpo").unwrap();
        assert_eq!((cell.stat.n, cell.values, cell.questions), (1, 2, 2));
        // Resampling {0, 1}: the 2.5 % tails fall on 0 and 1.
        // Two decimals: an interval as wide as the scale needs no third.
        assert_eq!(cell.text(), "0.50 [0.00, 1.00]");
    }
}

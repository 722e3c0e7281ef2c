//! The paper's table layout: rows (aggregators, or rounds), column groups (one per benchmark
//! metric), and inside each group one column per method. A results cell is the mean over seeds
//! with its 95 % bootstrap interval, marked where the method differs significantly from the
//! baseline (DPO); a cell of the per-round table is mean ± std over seeds. The best method of
//! each row and group can be marked.
//!
//! A [`Table`] is built from [`Observation`]s (one value per run, or per run and question) by
//! [`Table::build`] ([`build`], [`versus`]), then rendered ([`render`]: Markdown, LaTeX
//! booktabs, HTML) or written as a long frame ([`write`]: CSV, Parquet).

mod build;
mod cell;
pub mod render;
pub mod versus;
pub mod write;

pub use self::{
    cell::{interval_text, Cell, Mark, Versus},
    versus::BASELINE,
};
use crate::order;

/// One value for one table cell: a run's value, or its score on one question.
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
    /// The run's seed: values of one seed are resampled together and matched across methods.
    pub seed: u64,
    /// The question (evaluation item id) scored; `None` for a value of the whole run.
    pub question: Option<String>,
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
    /// Direction for marking the best value and reading a difference as better or worse.
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

/// A table: `cells[row][group][method]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Title (a heading in the report).
    pub title: String,
    /// What the numbers are (printed under the table).
    pub caption: String,
    /// What the significance marks mean (printed under the caption); empty without marks.
    pub legend: String,
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
    /// The method every other one was compared with, when it has values.
    pub baseline: Option<String>,
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
    /// Give each cell its bootstrap interval (else cells show mean ± std).
    pub intervals: bool,
    /// Compare every other method with this one, on matched seeds and questions.
    pub baseline: Option<String>,
}

impl Table {
    /// The cell at (`row`, `benchmark`/`metric`, `method`), if it has values.
    pub fn cell(&self, row: &str, benchmark: &str, metric: &str, method: &str) -> Option<Cell> {
        let row = self.rows.iter().position(|r| r == row)?;
        let group = self.group_index(benchmark, metric)?;
        let method = self.methods.iter().position(|m| m == method)?;
        self.cells[row][group][method]
    }

    /// The index of the group of `benchmark` and `metric`.
    pub fn group_index(&self, benchmark: &str, metric: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.benchmark == benchmark && g.metric == metric)
    }

    /// Whether no cell has a value.
    pub fn is_empty(&self) -> bool {
        self.cells.iter().flatten().flatten().all(Option::is_none)
    }
}

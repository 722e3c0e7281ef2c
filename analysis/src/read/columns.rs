//! Builds a polars frame row by row from loosely typed cells: columns appear as rows bring
//! them (missing cells are null), integers widen to floats, and mixed kinds fall back to text.

use std::collections::HashMap;

use polars::prelude::{Column, DataFrame, PolarsResult};
use serde_json::Value;

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// Nothing.
    Null,
}

impl From<&Value> for Cell {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => Cell::Null,
            Value::Bool(b) => Cell::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Cell::Int(i),
                None => n.as_f64().map_or(Cell::Null, Cell::Float),
            },
            Value::String(s) => Cell::Str(s.clone()),
            other => Cell::Str(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
enum Values {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Str(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn for_cell(cell: &Cell, nulls: usize) -> Self {
        match cell {
            Cell::Int(_) | Cell::Null => Values::Int(vec![None; nulls]),
            Cell::Float(_) => Values::Float(vec![None; nulls]),
            Cell::Str(_) => Values::Str(vec![None; nulls]),
            Cell::Bool(_) => Values::Bool(vec![None; nulls]),
        }
    }

    fn len(&self) -> usize {
        match self {
            Values::Int(v) => v.len(),
            Values::Float(v) => v.len(),
            Values::Str(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    fn pad(&mut self, len: usize) {
        match self {
            Values::Int(v) => v.resize(len, None),
            Values::Float(v) => v.resize(len, None),
            Values::Str(v) => v.resize(len, None),
            Values::Bool(v) => v.resize(len, None),
        }
    }

    fn into_strings(self) -> Vec<Option<String>> {
        match self {
            Values::Int(v) => v.into_iter().map(|x| x.map(|x| x.to_string())).collect(),
            Values::Float(v) => v.into_iter().map(|x| x.map(|x| x.to_string())).collect(),
            Values::Str(v) => v,
            Values::Bool(v) => v.into_iter().map(|x| x.map(|x| x.to_string())).collect(),
        }
    }

    fn push(&mut self, cell: Cell) {
        match (&mut *self, cell) {
            (_, Cell::Null) => {
                let len = self.len();
                self.pad(len + 1);
            }
            (Values::Int(v), Cell::Int(i)) => v.push(Some(i)),
            (Values::Float(v), Cell::Float(x)) => v.push(Some(x)),
            (Values::Float(v), Cell::Int(i)) => v.push(Some(i as f64)),
            (Values::Int(v), Cell::Float(x)) => {
                let mut floats: Vec<Option<f64>> = v.iter().map(|i| i.map(|i| i as f64)).collect();
                floats.push(Some(x));
                *self = Values::Float(floats);
            }
            (Values::Str(v), cell) => v.push(Some(cell_text(cell))),
            (Values::Bool(v), Cell::Bool(b)) => v.push(Some(b)),
            (_, cell) => {
                let mut strings = std::mem::replace(self, Values::Str(Vec::new())).into_strings();
                strings.push(Some(cell_text(cell)));
                *self = Values::Str(strings);
            }
        }
    }

    fn into_column(self, name: &str) -> Column {
        match self {
            Values::Int(v) => Column::new(name.into(), v),
            Values::Float(v) => Column::new(name.into(), v),
            Values::Str(v) => Column::new(name.into(), v),
            Values::Bool(v) => Column::new(name.into(), v),
        }
    }
}

fn cell_text(cell: Cell) -> String {
    match cell {
        Cell::Int(i) => i.to_string(),
        Cell::Float(x) => x.to_string(),
        Cell::Str(s) => s,
        Cell::Bool(b) => b.to_string(),
        Cell::Null => String::new(),
    }
}

/// Rows in, one frame out.
#[derive(Debug, Default)]
pub struct Columns {
    height: usize,
    names: Vec<String>,
    values: Vec<Values>,
    index: HashMap<String, usize>,
}

impl Columns {
    /// No rows, with `names` as the first columns in this order (integer-typed until a value
    /// says otherwise), so a frame without rows still has them.
    pub fn with_leading(names: &[&str]) -> Self {
        let mut columns = Columns::default();
        for name in names {
            columns.column(name, &Cell::Null);
        }
        columns
    }

    fn column(&mut self, name: &str, first: &Cell) -> &mut Values {
        let slot = match self.index.get(name) {
            Some(&slot) => slot,
            None => {
                self.names.push(name.to_owned());
                self.values.push(Values::for_cell(first, self.height));
                self.index.insert(name.to_owned(), self.values.len() - 1);
                self.values.len() - 1
            }
        };
        &mut self.values[slot]
    }

    /// Appends a row; columns it does not mention get a null.
    pub fn push_row(&mut self, cells: impl IntoIterator<Item = (String, Cell)>) {
        for (name, cell) in cells {
            let height = self.height;
            let values = self.column(&name, &cell);
            if values.len() > height {
                // The same column twice in one row: the later value wins.
                values.pad(height);
            }
            values.push(cell);
        }
        self.height += 1;
        for values in &mut self.values {
            values.pad(self.height);
        }
    }

    /// Rows so far.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The frame.
    ///
    /// # Errors
    /// polars' errors (none expected: every column has the same length).
    pub fn finish(self) -> PolarsResult<DataFrame> {
        let columns = self
            .names
            .iter()
            .zip(self.values)
            .map(|(name, values)| values.into_column(name))
            .collect();
        DataFrame::new(self.height, columns)
    }
}

#[cfg(test)]
mod tests {
    use polars::prelude::DataType;

    use super::*;

    #[test]
    fn columns_appear_widen_and_pad_with_nulls() {
        let mut columns = Columns::with_leading(&["run"]);
        columns.push_row([
            ("run".into(), Cell::Str("a".into())),
            ("x".into(), Cell::Int(1)),
        ]);
        columns.push_row([
            ("run".into(), Cell::Str("b".into())),
            ("x".into(), Cell::Float(2.5)),
            ("y".into(), Cell::Bool(true)),
        ]);
        columns.push_row([("run".into(), Cell::Str("c".into()))]);
        let frame = columns.finish().unwrap();
        assert_eq!(frame.shape(), (3, 3));
        assert_eq!(frame.column("x").unwrap().dtype(), &DataType::Float64);
        let x: Vec<Option<f64>> = frame.column("x").unwrap().f64().unwrap().iter().collect();
        assert_eq!(x, vec![Some(1.0), Some(2.5), None]);
        assert_eq!(frame.column("y").unwrap().null_count(), 2);
    }

    #[test]
    fn mixed_kinds_become_text() {
        let mut columns = Columns::default();
        columns.push_row([("v".into(), Cell::Int(3))]);
        columns.push_row([("v".into(), Cell::Str("three".into()))]);
        let frame = columns.finish().unwrap();
        let v: Vec<Option<&str>> = frame.column("v").unwrap().str().unwrap().iter().collect();
        assert_eq!(v, vec![Some("3"), Some("three")]);
    }

    #[test]
    fn empty_frame_keeps_leading_columns() {
        let frame = Columns::with_leading(&["run", "round"]).finish().unwrap();
        assert_eq!(frame.shape(), (0, 2));
    }
}

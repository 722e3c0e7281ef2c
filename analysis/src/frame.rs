//! Typed reads of frame columns, tolerant of a column that is absent or of another numeric
//! type (rows written by older runs may lack a metric): absent reads as all-null.

use polars::prelude::{DataFrame, DataType};

/// Column `name` as text (null where absent or not text).
pub fn strings(frame: &DataFrame, name: &str) -> Vec<Option<String>> {
    let Ok(column) = frame.column(name) else {
        return vec![None; frame.height()];
    };
    match column.cast(&DataType::String) {
        Ok(cast) => match cast.str() {
            Ok(values) => values.iter().map(|v| v.map(str::to_owned)).collect(),
            Err(_) => vec![None; frame.height()],
        },
        Err(_) => vec![None; frame.height()],
    }
}

/// Column `name` as floats (null where absent, null or not numeric).
pub fn floats(frame: &DataFrame, name: &str) -> Vec<Option<f64>> {
    let Ok(column) = frame.column(name) else {
        return vec![None; frame.height()];
    };
    if !column.dtype().is_primitive_numeric() {
        return vec![None; frame.height()];
    }
    match column.cast(&DataType::Float64) {
        Ok(cast) => match cast.f64() {
            Ok(values) => values.iter().collect(),
            Err(_) => vec![None; frame.height()],
        },
        Err(_) => vec![None; frame.height()],
    }
}

/// Column `name` as integers (null where absent, null or not an integer).
pub fn ints(frame: &DataFrame, name: &str) -> Vec<Option<i64>> {
    let Ok(column) = frame.column(name) else {
        return vec![None; frame.height()];
    };
    if !column.dtype().is_integer() {
        return vec![None; frame.height()];
    }
    match column.cast(&DataType::Int64) {
        Ok(cast) => match cast.i64() {
            Ok(values) => values.iter().collect(),
            Err(_) => vec![None; frame.height()],
        },
        Err(_) => vec![None; frame.height()],
    }
}

/// Whether the frame has column `name` with at least one non-null value.
pub fn has_values(frame: &DataFrame, name: &str) -> bool {
    frame.column(name).is_ok_and(|c| c.null_count() < c.len())
}

#[cfg(test)]
mod tests {
    use polars::prelude::Column;

    use super::*;

    #[test]
    fn absent_and_mistyped_columns_read_as_null() {
        let frame = DataFrame::new(
            2,
            vec![
                Column::new("i".into(), [Some(1i64), None]),
                Column::new("s".into(), ["a", "b"]),
            ],
        )
        .unwrap();
        assert_eq!(floats(&frame, "i"), vec![Some(1.0), None]);
        assert_eq!(ints(&frame, "i"), vec![Some(1), None]);
        assert_eq!(floats(&frame, "s"), vec![None, None]);
        assert_eq!(floats(&frame, "nope"), vec![None, None]);
        assert_eq!(
            strings(&frame, "s"),
            vec![Some("a".into()), Some("b".into())]
        );
        assert!(has_values(&frame, "i") && !has_values(&frame, "nope"));
    }
}

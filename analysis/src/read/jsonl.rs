//! Tolerant JSON-lines reading: every row that parses as a JSON object is kept with its line
//! number; a line that does not (a truncated last line of a killed run, a corrupt row) becomes
//! a [`Problem`] and is skipped. Rows of a round that was run twice are reduced to the last.

use std::{collections::HashMap, hash::Hash, io::ErrorKind, path::Path};

use serde_json::{Map, Value};

use super::Problem;

/// One parsed row and its 1-based line number.
pub type Row = (usize, Map<String, Value>);

/// Reads the object rows of `path`. `None` when the file does not exist (the caller decides
/// whether that is a problem) or cannot be read (reported).
pub fn read_rows(path: &Path, problems: &mut Vec<Problem>) -> Option<Vec<Row>> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(Problem::file(
                path,
                format!("cannot read it ({e}); skipped"),
            ));
            return None;
        }
    };
    let ends_with_newline = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut rows = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => rows.push((number, map)),
            Ok(other) => problems.push(Problem::line(
                path,
                number,
                format!(
                    "expected a JSON object, found {}; line skipped",
                    kind_of(&other)
                ),
            )),
            Err(e) if number == lines.len() && !ends_with_newline => problems.push(Problem::line(
                path,
                number,
                format!("truncated last line ({e}), as a killed run leaves it; line skipped"),
            )),
            Err(e) => problems.push(Problem::line(
                path,
                number,
                format!("not JSON ({e}); line skipped"),
            )),
        }
    }
    Some(rows)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Keeps the last row for each key (a resumed or repeated round appends its rows again),
/// sorted by key.
pub fn keep_last<K: Ord + Hash + Clone>(
    rows: Vec<Row>,
    key: impl Fn(&Map<String, Value>) -> K,
) -> Vec<Row> {
    let mut last: HashMap<K, Row> = HashMap::new();
    for row in rows {
        last.insert(key(&row.1), row);
    }
    let mut kept: Vec<(K, Row)> = last.into_iter().collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept.into_iter().map(|(_, row)| row).collect()
}

/// `row[key]` as an integer (`-1` when absent or not an integer, which sorts first).
pub fn int_field(row: &Map<String, Value>, key: &str) -> i64 {
    row.get(key).and_then(Value::as_i64).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_and_truncated_lines_are_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        std::fs::write(
            &path,
            "{\"round\":0}\n[1]\nnot json\n\n{\"round\":1}\n{\"round\":2,\"lo",
        )
        .unwrap();
        let mut problems = Vec::new();
        let rows = read_rows(&path, &mut problems).unwrap();
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 5]);
        let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![Some(2), Some(3), Some(6)]);
        assert!(
            problems[2].message.contains("truncated last line"),
            "{}",
            problems[2]
        );
        assert!(problems[1]
            .to_string()
            .starts_with(&format!("{}:3: not JSON", path.display())));
    }

    #[test]
    fn missing_file_is_none_without_a_problem() {
        let mut problems = Vec::new();
        assert!(read_rows(Path::new("/nonexistent/rows.jsonl"), &mut problems).is_none());
        assert!(problems.is_empty());
    }

    #[test]
    fn keep_last_keeps_the_later_row_of_a_repeated_round() {
        let row = |line: usize, round: i64| {
            let mut map = Map::new();
            map.insert("round".into(), round.into());
            (line, map)
        };
        let rows = vec![row(1, 0), row(2, 1), row(3, 1), row(4, 2)];
        let kept = keep_last(rows, |r| int_field(r, "round"));
        assert_eq!(kept.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3, 4]);
    }
}

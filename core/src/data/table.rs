//! Plain-text tables with aligned columns, for `fedpref data inspect`.

use std::fmt;

/// A table: a header row and data rows; numeric-looking cells are right-aligned.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells print empty).
    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        self.rows.push(cells);
        self
    }
}

fn is_numeric(cell: &str) -> bool {
    !cell.is_empty()
        && cell
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '%' | '-' | ','))
}

impl fmt::Display for Table {
    /// Two-space indent, two spaces between columns, no trailing spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n_columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let cell = |row: &[String], c: usize| row.get(c).map_or("", String::as_str).to_owned();
        let widths: Vec<usize> = (0..n_columns)
            .map(|c| {
                self.rows
                    .iter()
                    .chain([&self.headers])
                    .map(|r| cell(r, c).chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in [&self.headers].into_iter().chain(&self.rows) {
            let mut line = String::from(" ");
            for (c, width) in widths.iter().enumerate() {
                let text = cell(row, c);
                line.push(' ');
                if is_numeric(&text) {
                    line.push_str(&format!("{text:>width$}"));
                } else {
                    line.push_str(&format!("{text:<width$}"));
                }
                line.push(' ');
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["name", "count"]);
        t.row(vec!["a".into(), "7".into()])
            .row(vec!["longer".into(), "1234".into()]);
        assert_eq!(
            t.to_string(),
            "  name    count\n  a           7\n  longer   1234\n"
        );
    }
}

//! Flattens a resolved `config.toml` into `section.key` columns (`federation.rounds`,
//! `losses.dpo.beta`); lists become comma-separated text so every run has one row.

use super::columns::Cell;

/// `(column, value)` for every leaf of `table`, keys joined with dots, in file order.
pub fn flatten(table: &toml::Table) -> Vec<(String, Cell)> {
    let mut cells = Vec::new();
    flatten_into("", table, &mut cells);
    cells
}

fn flatten_into(prefix: &str, table: &toml::Table, cells: &mut Vec<(String, Cell)>) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten_into(&name, inner, cells),
            other => cells.push((name, cell(other))),
        }
    }
}

fn cell(value: &toml::Value) -> Cell {
    match value {
        toml::Value::String(s) => Cell::Str(s.clone()),
        toml::Value::Integer(i) => Cell::Int(*i),
        toml::Value::Float(x) => Cell::Float(*x),
        toml::Value::Boolean(b) => Cell::Bool(*b),
        toml::Value::Datetime(d) => Cell::Str(d.to_string()),
        toml::Value::Array(items) => Cell::Str(
            items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        toml::Value::Table(table) => Cell::Str(toml::Value::Table(table.clone()).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_tables_and_lists_flatten() {
        let table: toml::Table = r#"
            [lora]
            rank = 8
            targets = ["q_proj", "v_proj"]
            [losses.dpo]
            beta = 0.1
        "#
        .parse()
        .unwrap();
        assert_eq!(
            flatten(&table),
            vec![
                ("lora.rank".into(), Cell::Int(8)),
                ("lora.targets".into(), Cell::Str("q_proj,v_proj".into())),
                ("losses.dpo.beta".into(), Cell::Float(0.1)),
            ]
        );
    }
}

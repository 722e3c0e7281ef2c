//! Text renderings of a [`Table`]: GitHub Markdown (best in bold), LaTeX with booktabs
//! (`\toprule`, grouped `\cmidrule`s, best in `\mathbf`), and an HTML table with a two-level
//! header (best in `<strong>`).

use std::fmt::Write;

use super::{Cell, Table};

const MISSING: &str = "—";

fn cell_text(cell: &Option<Cell>) -> Option<(String, bool)> {
    cell.map(|c| (c.stat.display(), c.best))
}

/// Markdown: one header row (`group: METHOD`), the caption in italics below.
pub fn markdown(table: &Table) -> String {
    let mut out = String::new();
    let mut header = vec![table.row_header.clone()];
    for group in &table.groups {
        for method in &table.method_labels {
            header.push(format!("{}: {method}", group.label));
        }
    }
    let _ = writeln!(
        out,
        "| {} |",
        header
            .iter()
            .map(|h| markdown_escape(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        out,
        "|{}",
        [":---|".to_owned(), "---:|".repeat(header.len() - 1)].concat()
    );
    for (row, cells) in table.rows.iter().zip(&table.cells) {
        let mut line = vec![markdown_escape(row)];
        for cell in cells.iter().flatten() {
            line.push(match cell_text(cell) {
                Some((text, true)) => format!("**{text}**"),
                Some((text, false)) => text,
                None => MISSING.to_owned(),
            });
        }
        let _ = writeln!(out, "| {} |", line.join(" | "));
    }
    if !table.caption.is_empty() {
        let _ = writeln!(out, "\n*{}*", table.caption.trim_end_matches('.'));
    }
    out
}

fn markdown_escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// LaTeX (booktabs): a `table` float with the caption, one `\multicolumn` per group.
pub fn latex(table: &Table) -> String {
    let methods = table.methods.len();
    let mut out = String::new();
    let columns: String = table
        .groups
        .iter()
        .map(|_| format!(" {}", "c".repeat(methods)))
        .collect();
    let _ = writeln!(
        out,
        "% {} (written by fedpref report; needs \\usepackage{{booktabs}})",
        table.title
    );
    let _ = writeln!(out, "\\begin{{table}}[t]\n\\centering");
    let _ = writeln!(out, "\\caption{{{}}}", latex_escape(&table.caption));
    let _ = writeln!(out, "\\begin{{tabular}}{{l{columns}}}\n\\toprule");
    let groups: Vec<String> = table
        .groups
        .iter()
        .map(|g| {
            format!(
                "\\multicolumn{{{methods}}}{{c}}{{{}}}",
                latex_escape(&g.label)
            )
        })
        .collect();
    let _ = writeln!(out, " & {} \\\\", groups.join(" & "));
    let rules: Vec<String> = (0..table.groups.len())
        .map(|g| {
            format!(
                "\\cmidrule(lr){{{}-{}}}",
                2 + g * methods,
                1 + (g + 1) * methods
            )
        })
        .collect();
    let _ = writeln!(out, "{}", rules.join(" "));
    let method_headers: Vec<String> = table
        .groups
        .iter()
        .flat_map(|_| table.method_labels.iter().map(|m| latex_escape(m)))
        .collect();
    let _ = writeln!(
        out,
        "{} & {} \\\\\n\\midrule",
        latex_escape(&table.row_header),
        method_headers.join(" & ")
    );
    for (row, cells) in table.rows.iter().zip(&table.cells) {
        let mut line = vec![latex_escape(row)];
        for cell in cells.iter().flatten() {
            line.push(match cell {
                Some(cell) => {
                    let text = cell.stat.display().replace('±', "\\pm");
                    if cell.best {
                        format!("$\\mathbf{{{text}}}$")
                    } else {
                        format!("${text}$")
                    }
                }
                None => "--".to_owned(),
            });
        }
        let _ = writeln!(out, "{} \\\\", line.join(" & "));
    }
    let _ = writeln!(out, "\\bottomrule\n\\end{{tabular}}\n\\end{{table}}");
    out
}

/// Escapes LaTeX's special characters in plain text.
pub fn latex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '±' => out.push_str("$\\pm$"),
            '·' => out.push_str("$\\cdot$"),
            '—' => out.push_str("---"),
            other => out.push(other),
        }
    }
    out
}

/// An HTML `<table>`: group headers spanning their methods, then method headers.
pub fn html(table: &Table) -> String {
    let methods = table.methods.len();
    let mut out = String::from("<table>\n<thead>\n<tr><th rowspan=\"2\">");
    out.push_str(&html_escape(&table.row_header));
    out.push_str("</th>");
    for group in &table.groups {
        let _ = write!(
            out,
            "<th colspan=\"{methods}\" class=\"group\">{}</th>",
            html_escape(&group.label)
        );
    }
    out.push_str("</tr>\n<tr>");
    for _ in &table.groups {
        for method in &table.method_labels {
            let _ = write!(out, "<th>{}</th>", html_escape(method));
        }
    }
    out.push_str("</tr>\n</thead>\n<tbody>\n");
    for (row, cells) in table.rows.iter().zip(&table.cells) {
        let _ = write!(out, "<tr><th>{}</th>", html_escape(row));
        for (index, cell) in cells.iter().flatten().enumerate() {
            let class = if index % methods == 0 {
                " class=\"first\""
            } else {
                ""
            };
            match cell_text(cell) {
                Some((text, true)) => {
                    let _ = write!(
                        out,
                        "<td{class}><strong>{}</strong></td>",
                        html_escape(&text)
                    );
                }
                Some((text, false)) => {
                    let _ = write!(out, "<td{class}>{}</td>", html_escape(&text));
                }
                None => {
                    let _ = write!(out, "<td{class} class=\"missing\">{MISSING}</td>");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    if !table.caption.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"caption\">{}</p>",
            html_escape(&table.caption)
        );
    }
    out
}

/// Escapes `&`, `<`, `>` and `"`.
pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Group, Layout, Observation, Table};

    fn table() -> Table {
        let observation = |method: &str, value| Observation {
            row: "fedavg".into(),
            benchmark: "advbench".into(),
            metric: "harmless_rate".into(),
            method: method.into(),
            value,
        };
        Table::build(
            Layout {
                title: "Results".into(),
                caption: "Mean ± std over seeds.".into(),
                row_header: "Aggregator".into(),
                rows: vec!["fedavg".into()],
                groups: vec![Group::new(
                    "advbench",
                    "harmless_rate",
                    "AdvBench harmless_rate",
                )],
                methods: vec!["dpo".into(), "kto".into()],
                mark_best: true,
            },
            &[
                observation("dpo", 0.5),
                observation("dpo", 0.7),
                observation("kto", 0.25),
            ],
        )
    }

    #[test]
    fn markdown_marks_best_and_fills_missing() {
        let text = markdown(&table());
        assert!(text.starts_with("| Aggregator | AdvBench harmless_rate: DPO | AdvBench harmless_rate: KTO |\n|:---|---:|---:|\n"), "{text}");
        assert!(
            text.contains("| fedavg | **0.600 ± 0.141** | 0.250 |"),
            "{text}"
        );
        assert!(text.ends_with("*Mean ± std over seeds*\n"), "{text}");
    }

    #[test]
    fn latex_uses_booktabs_and_escapes() {
        let text = latex(&table());
        for needle in [
            "\\toprule",
            "\\multicolumn{2}{c}{AdvBench harmless\\_rate}",
            "\\cmidrule(lr){2-3}",
            "Aggregator & DPO & KTO \\\\",
            "fedavg & $\\mathbf{0.600 \\pm 0.141}$ & $0.250$ \\\\",
            "\\caption{Mean $\\pm$ std over seeds.}",
            "\\bottomrule",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }

    #[test]
    fn html_has_two_header_rows() {
        let text = html(&table());
        assert!(
            text.contains("<th colspan=\"2\" class=\"group\">AdvBench harmless_rate</th>"),
            "{text}"
        );
        assert!(text.contains("<strong>0.600 ± 0.141</strong>"), "{text}");
        assert_eq!(html_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}

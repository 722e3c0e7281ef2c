//! Text renderings of a [`Table`]: GitHub Markdown (best in bold), LaTeX with booktabs
//! (`\toprule`, grouped `\cmidrule`s, best in `\mathbf`), and an HTML table with a two-level
//! header (best in `<strong>`). A cell that differs significantly from the baseline carries
//! its mark (`*` better, `†` worse) after the number; the legend follows the caption.

use std::fmt::Write;

use super::{Cell, Mark, Table};

const MISSING: &str = "—";

fn cell_text(cell: &Option<Cell>) -> Option<(String, bool, Option<Mark>)> {
    cell.map(|c| (c.text(), c.best, c.mark()))
}

/// `*` escaped for Markdown, where a bare one may start emphasis.
fn markdown_mark(mark: Option<Mark>) -> &'static str {
    match mark {
        Some(Mark::Better) => "\\*",
        Some(Mark::Worse) => "†",
        None => "",
    }
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
                Some((text, true, mark)) => format!("**{text}**{}", markdown_mark(mark)),
                Some((text, false, mark)) => format!("{text}{}", markdown_mark(mark)),
                None => MISSING.to_owned(),
            });
        }
        let _ = writeln!(out, "| {} |", line.join(" | "));
    }
    if !table.caption.is_empty() {
        let _ = writeln!(out, "\n*{}*", table.caption.trim_end_matches('.'));
    }
    if !table.legend.is_empty() {
        let _ = writeln!(out, "\n{}", table.legend.replace('*', "\\*"));
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
    let caption = if table.legend.is_empty() {
        latex_escape(&table.caption)
    } else {
        format!(
            "{}. {}",
            latex_escape(table.caption.trim_end_matches('.')),
            latex_escape(&table.legend).replace('*', "$^{*}$")
        )
    };
    let _ = writeln!(out, "\\caption{{{caption}}}");
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
                Some(cell) => latex_cell(cell),
                None => "--".to_owned(),
            });
        }
        let _ = writeln!(out, "{} \\\\", line.join(" & "));
    }
    let _ = writeln!(out, "\\bottomrule\n\\end{{tabular}}\n\\end{{table}}");
    out
}

/// A cell in math mode: `$\\mathbf{0.600\\ [0.500, 0.700]}^{*}$`.
fn latex_cell(cell: &Cell) -> String {
    let text = cell.text().replace('±', "\\pm").replace(" [", "\\ [");
    let body = if cell.best {
        format!("\\mathbf{{{text}}}")
    } else {
        text
    };
    let mark = match cell.mark() {
        Some(Mark::Better) => "^{*}",
        Some(Mark::Worse) => "^{\\dagger}",
        None => "",
    };
    format!("${body}{mark}$")
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
            '<' => out.push_str("$<$"),
            '>' => out.push_str("$>$"),
            '†' => out.push_str("$^{\\dagger}$"),
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
                Some((text, best, mark)) => {
                    let text = html_escape(&text);
                    let text = if best {
                        format!("<strong>{text}</strong>")
                    } else {
                        text
                    };
                    let mark = mark.map_or(String::new(), |m| format!("<sup>{}</sup>", m.symbol()));
                    let _ = write!(out, "<td{class}>{text}{mark}</td>");
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
    if !table.legend.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"caption\">{}</p>",
            html_escape(&table.legend)
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

    fn layout(methods: &[&str], intervals: bool) -> Layout {
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
            methods: methods.iter().map(|m| m.to_string()).collect(),
            mark_best: true,
            intervals,
            baseline: intervals.then(|| "dpo".to_owned()),
        }
    }

    fn observation(method: &str, seed: u64, question: Option<String>, value: f64) -> Observation {
        Observation {
            row: "fedavg".into(),
            benchmark: "advbench".into(),
            metric: "harmless_rate".into(),
            method: method.into(),
            seed,
            question,
            value,
        }
    }

    /// Mean ± std over seeds, no intervals.
    fn table() -> Table {
        Table::build(
            layout(&["dpo", "kto"], false),
            &[
                observation("dpo", 0, None, 0.5),
                observation("dpo", 1, None, 0.7),
                observation("kto", 0, None, 0.25),
            ],
        )
    }

    /// Eight questions: DPO scores 0.5 on each, KTO 1 (better), KTOR 0 (worse); each
    /// comparison has eight differences of one sign, p = 2/256, Holm over two: 4/256.
    fn marked() -> Table {
        let mut observations = Vec::new();
        for q in 0..8 {
            for (method, value) in [("dpo", 0.5), ("kto", 1.0), ("ktor", 0.0)] {
                observations.push(observation(method, 0, Some(format!("q{q}")), value));
            }
        }
        Table::build(layout(&["dpo", "kto", "ktor"], true), &observations)
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
    fn significance_marks_and_legend() {
        let table = marked();
        let kto = table
            .cell("fedavg", "advbench", "harmless_rate", "kto")
            .unwrap();
        let versus = kto.versus.unwrap();
        assert_eq!(versus.paired.wilcoxon.p_value, 2.0 / 256.0);
        assert_eq!(versus.p_adjusted, 4.0 / 256.0);
        assert_eq!(table.baseline.as_deref(), Some("dpo"));
        let text = markdown(&table);
        assert!(
            text.contains("| fedavg | 0.500 [0.500, 0.500] | **1.00 [1.00, 1.00]**\\* | 0.000 [0.000, 0.000]† |"),
            "{text}"
        );
        assert!(
            text.contains("\n\\* better, † worse than DPO (two-sided Wilcoxon"),
            "{text}"
        );
        let latex = latex(&table);
        assert!(
            latex.contains("$0.500\\ [0.500, 0.500]$ & $\\mathbf{1.00\\ [1.00, 1.00]}^{*}$ & $0.000\\ [0.000, 0.000]^{\\dagger}$"),
            "{latex}"
        );
        assert!(
            latex.contains("$^{*}$ better, $^{\\dagger}$ worse than DPO"),
            "{latex}"
        );
        let html = html(&table);
        assert!(
            html.contains("<strong>1.00 [1.00, 1.00]</strong><sup>*</sup>"),
            "{html}"
        );
        assert!(html.contains("0.000 [0.000, 0.000]<sup>†</sup>"), "{html}");
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

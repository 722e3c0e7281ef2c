//! A self-contained HTML page: inline CSS, tables as HTML, figures as inline SVG (so the page
//! works offline, copied anywhere, with no image files beside it).

use std::fmt::Write;

use crate::table::render::html_escape;

const STYLE: &str = "
body { font-family: 'DejaVu Sans', system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child, tbody th { text-align: left; }
thead th { border-bottom: 2px solid #888; } th.group { text-align: center; border-bottom: 1px solid #888; }
td.first { border-left: 1px solid #ccc; } td.missing { color: #aaa; }
table.text td { text-align: left; }
.caption, figcaption { color: #555; font-size: 0.9em; font-style: italic; }
figure { margin: 1.5em 0; } figure svg { max-width: 100%; height: auto; }
.problems li { color: #8a3b00; } code { background: #f4f4f4; padding: 0 0.2em; }
details > summary { cursor: pointer; color: #333; }
";

/// An HTML page under construction.
#[derive(Debug, Clone)]
pub struct Page {
    body: String,
    title: String,
}

impl Page {
    /// A page titled `title` (also its first heading).
    pub fn new(title: &str) -> Self {
        Page {
            body: format!("<h1>{}</h1>\n", html_escape(title)),
            title: title.to_owned(),
        }
    }

    /// A second-level heading.
    pub fn heading(&mut self, text: &str) {
        let _ = writeln!(self.body, "<h2>{}</h2>", html_escape(text));
    }

    /// A paragraph of plain text.
    pub fn paragraph(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p>{}</p>", html_escape(text));
    }

    /// Markup as is (from [`crate::table::render::html`]).
    pub fn raw(&mut self, html: &str) {
        self.body.push_str(html);
        self.body.push('\n');
    }

    /// A list of plain-text items, with a class.
    pub fn list(&mut self, items: &[String], class: &str) {
        let _ = writeln!(self.body, "<ul class=\"{class}\">");
        for item in items {
            let _ = writeln!(self.body, "<li>{}</li>", html_escape(item));
        }
        self.body.push_str("</ul>\n");
    }

    /// A two-column table of plain text (key, value), inside a collapsible block when `fold`.
    pub fn key_values(&mut self, rows: &[(String, String)], fold: Option<&str>) {
        if let Some(summary) = fold {
            let _ = writeln!(
                self.body,
                "<details><summary>{}</summary>",
                html_escape(summary)
            );
        }
        self.body.push_str("<table>\n<tbody>\n");
        for (key, value) in rows {
            let _ = writeln!(
                self.body,
                "<tr><th>{}</th><td style=\"text-align:left\">{}</td></tr>",
                html_escape(key),
                html_escape(value)
            );
        }
        self.body.push_str("</tbody>\n</table>\n");
        if fold.is_some() {
            self.body.push_str("</details>\n");
        }
    }

    /// A list of links to files relative to the page.
    pub fn links(&mut self, paths: &[String]) {
        self.body.push_str("<ul class=\"files\">\n");
        for path in paths {
            let path = html_escape(path);
            let _ = writeln!(self.body, "<li><a href=\"{path}\">{path}</a></li>");
        }
        self.body.push_str("</ul>\n");
    }

    /// A plain-text table with a header row, left-aligned.
    pub fn grid(&mut self, header: &[&str], rows: &[Vec<String>]) {
        self.body.push_str("<table class=\"text\">\n<thead><tr>");
        for cell in header {
            let _ = write!(self.body, "<th>{}</th>", html_escape(cell));
        }
        self.body.push_str("</tr></thead>\n<tbody>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let _ = write!(self.body, "<td>{}</td>", html_escape(cell));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody>\n</table>\n");
    }

    /// A figure: the SVG document inlined, then its caption.
    pub fn figure(&mut self, svg: &str, caption: &str) {
        let start = svg.find("<svg").unwrap_or(0);
        let _ = writeln!(
            self.body,
            "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>",
            &svg[start..],
            html_escape(caption)
        );
    }

    /// The whole document.
    pub fn finish(self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            html_escape(&self.title),
            self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_inlined_without_the_xml_declaration() {
        let mut page = Page::new("R & D");
        page.figure(
            "<?xml version=\"1.0\"?>\n<svg viewBox=\"0 0 1 1\"></svg>",
            "a < b",
        );
        let html = page.finish();
        assert!(html.contains("<title>R &amp; D</title>"));
        assert!(html.contains(
            "<figure>\n<svg viewBox=\"0 0 1 1\"></svg>\n<figcaption>a &lt; b</figcaption>"
        ));
        assert!(!html.contains("<?xml"));
    }
}

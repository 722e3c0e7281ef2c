//! `fedpref report`: writes a run's or sweep's `report/` directory:
//!
//! ```text
//! report/
//!   index.md, index.html        everything below put together with the config summary
//!                               (the HTML is self-contained: figures inline as SVG)
//!   tables/results.{csv,parquet,md,tex}   the paper's table (long form in CSV and Parquet,
//!                               with intervals and the tests against DPO)
//!   tables/rounds.{csv,parquet,md,tex}    training metrics per round
//!   figures/<name>.{svg,png}    training-<aggregator>, results, differences, harmless-rate,
//!                               communication, partition
//!   data/<frame>.parquet        the frames read: runs, steps, rounds, evals, eval_items
//! ```
//!
//! `index.md` and `index.html` hold the setup, the judge (its check and whether its scores can
//! be read), the results table with its legend, each benchmark's questions, seeds and
//! differences from DPO, the scoring diagnostics (unparsed and failed items, position
//! consistency), the per-round table and the figures.

use std::{
    fmt::Write,
    path::{Path, PathBuf},
};

use plotters::style::RGBColor;

use crate::{
    diagnostics::{self, diagnostics},
    figures::{
        self, bars::Bars, communication::Communication, differences::differences,
        partition::PartitionFigure, training::Training, FigureFiles, Palette,
    },
    html::Page,
    judge::{self, JudgeStatus},
    overview,
    results::{results_table, round_table, Source},
    summary::{summarize, Summary, RUN_COLUMNS},
    table::{render, write, Table},
    Error, Problem, Result, Sweep,
};

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct Report {
    /// The report directory.
    pub dir: PathBuf,
    /// `index.md`.
    pub index_md: PathBuf,
    /// `index.html`.
    pub index_html: PathBuf,
    /// Table files.
    pub tables: Vec<PathBuf>,
    /// Figure files.
    pub figures: Vec<FigureFiles>,
    /// The results table in Markdown (what `cargo xtask demo` prints).
    pub results_markdown: String,
}

/// Markdown and HTML written side by side.
pub(crate) struct Document {
    pub(crate) markdown: String,
    pub(crate) page: Page,
    dir: PathBuf,
}

impl Document {
    pub(crate) fn new(title: &str, dir: &Path) -> Self {
        Document {
            markdown: format!("# {title}\n\n"),
            page: Page::new(title),
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn heading(&mut self, text: &str) {
        let _ = write!(self.markdown, "## {text}\n\n");
        self.page.heading(text);
    }

    pub(crate) fn paragraph(&mut self, text: &str) {
        let _ = write!(self.markdown, "{text}\n\n");
        self.page.paragraph(text);
    }

    pub(crate) fn table(&mut self, table: &Table) {
        let _ = writeln!(self.markdown, "{}", render::markdown(table));
        self.page.raw(&render::html(table));
    }

    pub(crate) fn settings(&mut self, summary: &Summary) {
        for setting in &summary.headline {
            let _ = writeln!(self.markdown, "- **{}**: {}", setting.key, setting.value);
        }
        self.markdown.push('\n');
        let headline: Vec<(String, String)> = summary
            .headline
            .iter()
            .map(|s| (s.key.clone(), s.value.clone()))
            .collect();
        self.page.key_values(&headline, None);
        let rows: Vec<Vec<String>> = summary.runs.iter().map(|r| r.to_vec()).collect();
        self.grid(&RUN_COLUMNS, &rows);
        let config: Vec<(String, String)> = summary
            .config
            .iter()
            .map(|s| (s.key.clone(), s.value.clone()))
            .collect();
        let _ = write!(self.markdown, "<details><summary>Every config key (values across runs)</summary>\n\n| Key | Value |\n|:---|:---|\n");
        for (key, value) in &config {
            let _ = writeln!(self.markdown, "| `{key}` | {} |", value.replace('|', "\\|"));
        }
        self.markdown.push_str("\n</details>\n\n");
        self.page
            .key_values(&config, Some("Every config key (values across runs)"));
    }

    pub(crate) fn grid(&mut self, header: &[&str], rows: &[Vec<String>]) {
        let _ = writeln!(
            self.markdown,
            "| {} |\n|{}",
            header.join(" | "),
            ":---|".repeat(header.len())
        );
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(self.markdown, "| {} |", cells.join(" | "));
        }
        self.markdown.push('\n');
        self.page.grid(header, rows);
    }

    pub(crate) fn figure(&mut self, files: &FigureFiles) -> Result<()> {
        let relative = files.png.strip_prefix(&self.dir).unwrap_or(&files.png);
        let _ = write!(
            self.markdown,
            "![{}]({})\n\n*{}*\n\n",
            files.name,
            relative.display(),
            files.caption
        );
        let svg = std::fs::read_to_string(&files.svg).map_err(|e| Error::io(&files.svg, e))?;
        self.page.figure(&svg, &files.caption);
        Ok(())
    }

    /// The judge section: the verdict and the check's numbers, when a judge scored something
    /// or was checked; `label` names the sweep in a comparison.
    pub(crate) fn judge(&mut self, judge: &JudgeStatus, label: Option<&str>) {
        if !judge.is_relevant() {
            return;
        }
        self.heading(&match label {
            Some(label) => format!("Judge of {label}"),
            None => "Judge".to_owned(),
        });
        self.paragraph(&judge.verdict());
        let rows: Vec<Vec<String>> = judge
            .check_rows()
            .into_iter()
            .map(|(key, value)| vec![key, value])
            .collect();
        if !rows.is_empty() {
            self.grid(&["Judge check", "Value"], &rows);
        }
    }

    /// Under the results table: each benchmark's questions, seeds and differences from the
    /// baseline, then the scoring diagnostics.
    pub(crate) fn benchmarks(&mut self, sweep: &Sweep, results: &Table, source: Source) {
        if source == Source::Training {
            return;
        }
        let columns = overview::columns();
        let header: Vec<&str> = columns.iter().map(String::as_str).collect();
        self.grid(&header, &overview::rows(results));
        let rows = diagnostics::rows(&diagnostics(sweep));
        if !rows.is_empty() {
            self.paragraph("Scoring diagnostics (each run's last evaluation): items scored, unparsed and failed, and the judge's position consistency (the share of verdicts that survive swapping the answers' order).");
            self.grid(&diagnostics::COLUMNS, &rows);
        }
    }

    pub(crate) fn problems(&mut self, problems: &[Problem]) {
        if problems.is_empty() {
            return;
        }
        self.heading("Skipped files");
        self.paragraph("These files were missing or corrupt and were skipped (`fedpref report --strict` fails instead):");
        for problem in problems {
            let _ = writeln!(self.markdown, "- `{problem}`");
        }
        self.markdown.push('\n');
        let items: Vec<String> = problems.iter().map(ToString::to_string).collect();
        self.page.list(&items, "problems");
    }

    fn files(&mut self, tables: &[PathBuf], figures: &[FigureFiles]) {
        self.heading("Files");
        let relative = |p: &Path| p.strip_prefix(&self.dir).unwrap_or(p).display().to_string();
        let mut items: Vec<String> = tables.iter().map(|p| relative(p)).collect();
        items.extend(
            figures
                .iter()
                .flat_map(|f| [relative(&f.svg), relative(&f.png)]),
        );
        for item in &items {
            let _ = writeln!(self.markdown, "- [`{item}`]({item})");
        }
        self.markdown.push('\n');
        self.page.links(&items);
    }

    /// Lists the files, writes `index.md` and `index.html`, and returns the report whose
    /// headline table is `results`.
    pub(crate) fn into_report(
        mut self,
        tables: Vec<PathBuf>,
        figures: Vec<FigureFiles>,
        results: &Table,
    ) -> Result<Report> {
        self.files(&tables, &figures);
        let (md, html) = (self.dir.join("index.md"), self.dir.join("index.html"));
        std::fs::write(&md, &self.markdown).map_err(|e| Error::io(&md, e))?;
        std::fs::write(&html, self.page.finish()).map_err(|e| Error::io(&html, e))?;
        Ok(Report {
            dir: self.dir,
            index_md: md,
            index_html: html,
            tables,
            figures,
            results_markdown: render::markdown(results),
        })
    }
}

/// Writes `table` as `dir/<stem>.{csv,parquet,md,tex}`.
///
/// # Errors
/// [`Error::Io`] or [`Error::Frame`] naming the file.
pub fn write_table(table: &Table, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut frame = write::to_frame(table)?;
    let paths: Vec<PathBuf> = ["csv", "parquet", "md", "tex"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .collect();
    write::csv(&mut frame, &paths[0])?;
    write::parquet(&mut frame, &paths[1])?;
    std::fs::write(&paths[2], render::markdown(table)).map_err(|e| Error::io(&paths[2], e))?;
    std::fs::write(&paths[3], render::latex(table)).map_err(|e| Error::io(&paths[3], e))?;
    Ok(paths)
}

fn write_frames(sweep: &Sweep, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths = Vec::new();
    for (name, frame) in [
        ("runs", &sweep.runs_frame),
        ("steps", &sweep.steps),
        ("rounds", &sweep.rounds),
        ("evals", &sweep.evals),
        ("eval_items", &sweep.eval_items),
    ] {
        let path = dir.join(format!("{name}.parquet"));
        write::parquet(&mut frame.clone(), &path)?;
        paths.push(path);
    }
    Ok(paths)
}

/// The palette of `sweeps`' methods.
pub(crate) fn palette(sweeps: &[&Sweep]) -> Palette {
    let methods: Vec<String> = sweeps
        .iter()
        .flat_map(|s| s.runs.iter().map(|r| r.method.clone()))
        .collect();
    Palette::new(methods.iter().map(String::as_str))
}

/// The figures of the results table: all its groups, the differences from the baseline (when
/// the table compared methods with one), and AdvBench's harmless rate alone. File names start
/// with `prefix`.
pub(crate) fn result_figures(
    table: &Table,
    color: &dyn Fn(&str) -> RGBColor,
    source: Source,
    dir: &Path,
    prefix: &str,
) -> Result<Vec<FigureFiles>> {
    let mut files = Vec::new();
    let title = match source {
        Source::Training => "Last round's training metrics (no benchmark results yet)",
        Source::Evals | Source::Items => "Benchmark results",
    };
    if let Some(bars) =
        Bars::from_table(table, color, &format!("{prefix}results"), title, |_, _| {
            true
        })
    {
        files.push(figures::save(&bars, dir)?);
    }
    if let Some(bars) = differences(table, color, &format!("{prefix}differences")) {
        files.push(figures::save(&bars, dir)?);
    }
    if let Some(mut bars) = Bars::from_table(
        table,
        color,
        &format!("{prefix}harmless-rate"),
        // Short: a one-panel figure is narrow, and the panel already says "harmless rate".
        "AdvBench (higher is safer)",
        |_, m| m == "harmless_rate",
    ) {
        bars.caption = format!(
            "Share of harmful AdvBench prompts answered with a refusal (higher is safer). {}",
            bars.caption
        );
        files.push(figures::save(&bars, dir)?);
    }
    Ok(files)
}

/// Writes the report of `sweep` into `out` (created if needed; existing files replaced).
///
/// # Errors
/// [`Error::Io`], [`Error::Frame`] or [`Error::Figure`] naming the file that failed.
pub fn write_report(sweep: &Sweep, out: &Path) -> Result<Report> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let (results, source) = results_table(sweep);
    let rounds = round_table(sweep);
    let mut tables = write_table(&results, &out.join("tables"), "results")?;
    tables.extend(write_table(&rounds, &out.join("tables"), "rounds")?);
    tables.extend(write_frames(sweep, &out.join("data"))?);

    let figure_dir = out.join("figures");
    let palette = palette(&[sweep]);
    let mut figure_files = Vec::new();
    for training in Training::from_sweeps(&[sweep], &palette) {
        figure_files.push(figures::save(&training, &figure_dir)?);
    }
    figure_files.extend(result_figures(
        &results,
        &|m: &str| palette.color(m),
        source,
        &figure_dir,
        "",
    )?);
    if let Some(communication) = Communication::from_sweep(sweep, &palette) {
        figure_files.push(figures::save(&communication, &figure_dir)?);
    }
    if let Some(partition) = PartitionFigure::from_sweep(sweep) {
        figure_files.push(figures::save(&partition, &figure_dir)?);
    }

    let mut doc = Document::new(&format!("fedpref report: {}", sweep.name), out);
    doc.paragraph(&format!(
        "{} run(s) read from {} by fedpref-analysis {}.",
        sweep.runs.len(),
        sweep.root.display(),
        env!("CARGO_PKG_VERSION")
    ));
    doc.heading("Setup");
    doc.settings(&summarize(sweep));
    let judge = judge::status(sweep);
    doc.judge(&judge, None);
    doc.heading("Results");
    if source == Source::Training {
        doc.paragraph(
            "These runs have no evaluation results yet (metrics/evals.jsonl or eval/<benchmark>.jsonl), so the \
             table shows each run's last round of training metrics; once runs are evaluated it shows the \
             benchmarks (MT-Bench, Vicuna, AdvBench harmless rate, preference accuracy).",
        );
    }
    if judge.warns() {
        // Beside the numbers, not only in the judge section.
        doc.paragraph(&judge.verdict());
    }
    doc.table(&results);
    doc.benchmarks(sweep, &results, source);
    doc.heading("Communication");
    doc.paragraph(
        "Megabytes a run sent, up (the client updates aggregated) and down (the global adapter \
         or the broadcasts the sampled clients missed, and their plans), summed over its rounds \
         and averaged over seeds: the encodings' exact lengths (docs/compression.md).",
    );
    let (header, rows) = crate::communication::traffic_grid(sweep, &results.methods);
    doc.grid(&header, &rows);
    doc.heading("Training per round");
    doc.table(&rounds);
    doc.heading("Figures");
    for files in &figure_files {
        doc.figure(files)?;
    }
    doc.problems(&sweep.problems);
    doc.into_report(tables, figure_files, &results)
}

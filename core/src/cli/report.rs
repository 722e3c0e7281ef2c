//! `fedpref report <run-or-sweep-dir>`: reads the runs with `fedpref-analysis` and writes
//! `report/` (tables, figures, `index.md`, a self-contained `index.html`); `--compare A B`
//! lines two sweeps up side by side; `--privacy DIR` lines up one sweep per privacy setting
//! against ε, `--communication DIR` one per codec setting against the megabytes sent. Prints
//! the results table (Markdown) and the paths.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Args;
use fedpref_analysis::{ReadOptions, Report, Sweep};

use super::UsageError;

/// Arguments of `fedpref report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory (runs/<experiment>/<run>) or a sweep directory (runs/<experiment>).
    #[arg(
        required_unless_present_any = ["compare", "privacy", "communication"],
        conflicts_with_all = ["compare", "privacy", "communication"],
        value_name = "DIR"
    )]
    dir: Option<PathBuf>,
    /// Report quality against privacy: DIR holds one sweep per privacy setting
    /// (configs/dp-sweep.toml writes runs/dp-sweep/<setting>/).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["compare", "communication"])]
    privacy: Option<PathBuf>,
    /// Report quality against the megabytes sent: DIR holds one sweep per codec setting
    /// (configs/codec-sweep.toml writes runs/codec-sweep/<setting>/).
    #[arg(long, value_name = "DIR", conflicts_with = "compare")]
    communication: Option<PathBuf>,
    /// Compare two sweep (or run) directories side by side instead.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
    /// Where to write the report [default: <DIR>/report, or <A>/report/compare-<B's name>].
    #[arg(long, value_name = "OUT")]
    out: Option<PathBuf>,
    /// Fail on a missing or corrupt file instead of skipping it with a warning.
    #[arg(long)]
    strict: bool,
}

/// Reads, reports, prints.
pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let options = ReadOptions {
        strict: args.strict,
    };
    let settings_reports = [
        (&args.privacy, "privacy", "runs/dp-sweep"),
        (&args.communication, "codec", "runs/codec-sweep"),
    ];
    for (parent, kind, example) in settings_reports {
        let Some(parent) = parent else { continue };
        let sweeps = read_settings(parent, kind, example, options)?;
        let out = args.out.clone().unwrap_or_else(|| parent.join("report"));
        let report = if kind == "privacy" {
            fedpref_analysis::write_privacy_report(&sweeps, &out)?
        } else {
            fedpref_analysis::write_communication_report(&sweeps, &out)?
        };
        print_report(&report);
        return Ok(ExitCode::SUCCESS);
    }
    let report = match (&args.dir, &args.compare) {
        (Some(dir), None) => {
            let sweep = read(dir, options)?;
            let out = args.out.clone().unwrap_or_else(|| dir.join("report"));
            fedpref_analysis::write_report(&sweep, &out)?
        }
        (None, Some(pair)) if pair.len() == 2 => {
            let (a, b) = (read(&pair[0], options)?, read(&pair[1], options)?);
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| pair[0].join("report").join(format!("compare-{}", b.name)));
            fedpref_analysis::write_comparison(&a, &b, &out)?
        }
        _ => {
            return Err(
                UsageError("give one run or sweep directory, or --compare A B".into()).into(),
            )
        }
    };
    print_report(&report);
    Ok(ExitCode::SUCCESS)
}

/// Reads `dir`, turning "not a run directory" into a usage error and printing skipped files.
fn read(dir: &Path, options: ReadOptions) -> anyhow::Result<Sweep> {
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "{}: no such directory; give a run or sweep directory written by `fedpref run` (e.g. runs/quickstart)",
            dir.display()
        ))
        .into());
    }
    let sweep = match fedpref_analysis::read(dir, options) {
        Ok(sweep) => sweep,
        Err(error @ fedpref_analysis::Error::NoRuns { .. }) => {
            return Err(UsageError(error.to_string()).into())
        }
        Err(error) => return Err(error.into()),
    };
    if !sweep.problems.is_empty() {
        eprintln!(
            "warning: {} missing or corrupt file(s) or line(s) in {} were skipped (--strict fails instead):",
            sweep.problems.len(),
            dir.display()
        );
        for problem in &sweep.problems {
            eprintln!("  {problem}");
        }
    }
    Ok(sweep)
}

/// The sweeps in the subdirectories of `parent` (its `report/` left out), one per `kind`
/// setting (`privacy`, `codec`) as in the `example` folder.
fn read_settings(
    parent: &Path,
    kind: &str,
    example: &str,
    options: ReadOptions,
) -> anyhow::Result<Vec<Sweep>> {
    let entries = std::fs::read_dir(parent).map_err(|e| {
        UsageError(format!(
            "{}: {e}; give the folder holding one sweep per {kind} setting (e.g. {example})",
            parent.display()
        ))
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "report"))
        .collect();
    dirs.sort();
    let sweeps = dirs
        .iter()
        .map(|dir| read(dir, options))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if sweeps.len() < 2 {
        return Err(UsageError(format!(
            "{} holds {} sweep(s); a {kind} report needs one per setting, at least two",
            parent.display(),
            sweeps.len()
        ))
        .into());
    }
    Ok(sweeps)
}

fn print_report(report: &Report) {
    println!("{}", report.results_markdown.trim_end());
    println!();
    println!("report: {}", report.index_html.display());
    println!("        {}", report.index_md.display());
    println!("figures:");
    for figure in &report.figures {
        println!("  {}", figure.png.display());
    }
}

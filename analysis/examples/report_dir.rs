//! Writes the report of a run or sweep directory: `cargo run -p fedpref-analysis --example
//! report_dir -- <dir> [<out>]` (what `fedpref report` does, without building the CLI).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .ok_or("usage: report_dir <run-or-sweep-dir> [<out>]")?,
    );
    let out = args
        .next()
        .map_or_else(|| dir.join("report"), std::path::PathBuf::from);
    let sweep = fedpref_analysis::read(&dir, Default::default())?;
    for problem in &sweep.problems {
        eprintln!("warning: {problem}");
    }
    let report = fedpref_analysis::write_report(&sweep, &out)?;
    println!(
        "{}\n{}",
        report.results_markdown,
        report.index_html.display()
    );
    Ok(())
}

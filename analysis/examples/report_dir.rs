//! Writes the report of a run or sweep directory, or compares two, as `fedpref report` does
//! but without building the CLI:
//! `cargo run -p fedpref-analysis --example report_dir -- <dir> [<out>]` or
//! `... -- --compare <a> <b> <out>`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let read = |dir: &str| -> Result<fedpref_analysis::Sweep, fedpref_analysis::Error> {
        let sweep = fedpref_analysis::read(dir.as_ref(), Default::default())?;
        for problem in &sweep.problems {
            eprintln!("warning: {problem}");
        }
        Ok(sweep)
    };
    let report = match args.as_slice() {
        [flag, a, b, out] if flag == "--compare" => {
            fedpref_analysis::write_comparison(&read(a)?, &read(b)?, out.as_ref())?
        }
        [dir] => fedpref_analysis::write_report(&read(dir)?, &PathBuf::from(dir).join("report"))?,
        [dir, out] => fedpref_analysis::write_report(&read(dir)?, out.as_ref())?,
        _ => return Err("usage: report_dir <dir> [<out>] | --compare <a> <b> <out>".into()),
    };
    println!(
        "{}\n{}",
        report.results_markdown,
        report.index_html.display()
    );
    Ok(())
}

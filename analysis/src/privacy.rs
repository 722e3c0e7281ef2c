//! `fedpref report --privacy DIR`: the sweeps under DIR, one per privacy setting of the same
//! experiment (`configs/dp-sweep.toml`), side by side ([`crate::tradeoff`]): one row per
//! setting (ε spent after the last round, or no DP), and each benchmark against ε, the run
//! without DP as a dashed level.

use std::path::Path;

use crate::{
    figures::tradeoff::CostAxis,
    frame::floats,
    report::Report,
    summary::config_values,
    table::Table,
    tradeoff::{tradeoff_table, write_tradeoff_report, Setting, Tradeoff},
    Result, Source, Sweep,
};

/// The settings of `sweeps`, strongest privacy (smallest ε) first and no DP last; each labelled
/// `ε = 2.69 (z = 1.5)`, `ε = 1.20 (example-level, z = 1)` or `no DP`.
pub fn settings(sweeps: &[Sweep]) -> Vec<Setting<'_>> {
    let mut settings: Vec<Setting<'_>> = sweeps
        .iter()
        .map(|sweep| {
            let epsilon = floats(&sweep.rounds, "privacy/epsilon")
                .into_iter()
                .flatten()
                .reduce(f64::max);
            let values = config_values(sweep);
            let example = values
                .get("privacy.mode")
                .is_some_and(|m| m.contains("example"));
            let noise = values
                .get("privacy.noise_multiplier")
                .map(|z| format!("z = {z}"));
            let details: Vec<String> = example
                .then(|| "example-level".to_owned())
                .into_iter()
                .chain(noise)
                .collect();
            let label = match epsilon {
                Some(eps) if details.is_empty() => format!("ε = {eps:.2}"),
                Some(eps) => format!("ε = {eps:.2} ({})", details.join(", ")),
                None => "no DP".to_owned(),
            };
            Setting {
                sweep,
                cost: epsilon,
                label,
            }
        })
        .collect();
    settings.sort_by(|a, b| {
        let key = |s: &Setting<'_>| s.cost.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b))
    });
    settings
}

fn tradeoff() -> Tradeoff {
    Tradeoff {
        heading: "fedpref: quality against privacy".into(),
        title: "Quality against privacy".into(),
        caption: "Each run's last evaluation (or last round of training metrics without one), \
                  one row per privacy setting (ε spent after the last round at the configured δ); \
                  mean with its 95 % percentile bootstrap interval over questions (and seeds); \
                  no tests across settings; best per row and benchmark in bold"
            .into(),
        row_header: "Privacy".into(),
        name: "privacy".into(),
        axis: CostAxis {
            name: "privacy-curve".into(),
            title: "Quality against privacy".into(),
            label: "log10 epsilon".into(),
            caption: "Each benchmark against the ε spent (log10 scale; smaller is more private), \
                      one line per method with its 95 % interval as a band; dashed: the same \
                      method without DP."
                .into(),
        },
    }
}

/// The privacy table: rows the settings, per benchmark one column per method.
pub fn privacy_table(settings: &[Setting<'_>]) -> (Table, Source) {
    tradeoff_table(settings, &tradeoff())
}

/// Writes the privacy report of `sweeps` (one per setting) into `out`.
///
/// # Errors
/// [`crate::Error::Io`], [`crate::Error::Frame`] or [`crate::Error::Figure`] naming the file.
pub fn write_privacy_report(sweeps: &[Sweep], out: &Path) -> Result<Report> {
    let settings = settings(sweeps);
    let rows: Vec<Vec<String>> = settings
        .iter()
        .map(|s| {
            let values = config_values(s.sweep);
            let get = |key: &str| values.get(key).cloned().unwrap_or_else(|| "-".into());
            vec![
                s.sweep.name.clone(),
                s.label.clone(),
                get("privacy.clip_norm"),
                get("privacy.delta"),
                s.sweep.runs.len().to_string(),
            ]
        })
        .collect();
    let header = ["Sweep", "Privacy", "Clip norm", "δ", "Runs"];
    write_tradeoff_report(&settings, &tradeoff(), (&header, &rows), out)
}

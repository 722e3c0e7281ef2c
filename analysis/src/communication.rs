//! `fedpref report --communication DIR`: the sweeps under DIR, one per codec setting of the
//! same experiment (`configs/codec-sweep.toml`), side by side ([`crate::tradeoff`]): one row per
//! setting (its codecs and the megabytes a run sent), and each benchmark against the megabytes.

use std::path::Path;

use crate::{
    figures::tradeoff::CostAxis,
    frame::{floats, strings},
    report::Report,
    summary::config_values,
    tradeoff::{write_tradeoff_report, Setting, Tradeoff},
    Result, Sweep,
};

/// A sweep's traffic: mean megabytes per run up and down, and seconds encoding and decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Megabytes (10⁶ bytes) of client updates per run.
    pub up: f64,
    /// Megabytes sent to clients per run.
    pub down: f64,
    /// Seconds encoding per run.
    pub encode_seconds: f64,
    /// Seconds decoding per run.
    pub decode_seconds: f64,
}

impl Traffic {
    /// From `sweep`'s round records.
    pub fn of(sweep: &Sweep) -> Traffic {
        Self::of_method(sweep, None)
    }

    /// From the round records of `sweep`'s runs of `method` (all runs for `None`).
    pub fn of_method(sweep: &Sweep, method: Option<&str>) -> Traffic {
        let frame = &sweep.rounds;
        let methods = strings(frame, "method");
        let counted = |i: usize| method.is_none_or(|m| methods[i].as_deref() == Some(m));
        let runs = sweep
            .runs
            .iter()
            .filter(|r| method.is_none_or(|m| r.method == m))
            .count()
            .max(1) as f64;
        let per_run = |column: &str, scale: f64| {
            let values = floats(frame, column);
            ((0..frame.height())
                .filter(|&i| counted(i))
                .filter_map(|i| values[i])
                .sum::<f64>()
                // An empty f64 sum is -0.0, which would print as "-0.00"; adding 0.0 makes it 0.0.
                + 0.0)
                / runs
                / scale
        };
        Traffic {
            up: per_run("bytes_up", 1e6),
            down: per_run("bytes_down", 1e6),
            encode_seconds: per_run("compression/encode_seconds", 1.0),
            decode_seconds: per_run("compression/decode_seconds", 1.0),
        }
    }
}

/// `sweep`'s codecs in words: `float32`, or `↑ top-k 0.01 · ↓ int8`.
pub fn codecs_label(sweep: &Sweep) -> String {
    let values = config_values(sweep);
    let codec = |key: &str| {
        let name = values
            .get(key)
            .map_or("none", |v| v.trim_matches('"'))
            .to_owned();
        match values.get(&format!("codecs.{name}.fraction")) {
            Some(fraction) => format!("{name} {fraction}"),
            None => name,
        }
    };
    let (up, down) = (codec("compression.uplink"), codec("compression.downlink"));
    if up == "none" && down == "none" {
        "float32".to_owned()
    } else {
        format!("↑ {up} · ↓ {down}")
    }
}

/// The settings of `sweeps`, fewest megabytes first.
pub fn settings(sweeps: &[Sweep]) -> Vec<Setting<'_>> {
    let mut settings: Vec<Setting<'_>> = sweeps
        .iter()
        .map(|sweep| {
            let traffic = Traffic::of(sweep);
            let total = traffic.up + traffic.down;
            Setting {
                sweep,
                cost: Some(total),
                label: format!("{} ({total:.1} MB)", codecs_label(sweep)),
            }
        })
        .collect();
    settings.sort_by(|a, b| a.cost.unwrap_or(0.0).total_cmp(&b.cost.unwrap_or(0.0)));
    settings
}

fn tradeoff() -> Tradeoff {
    Tradeoff {
        heading: "fedpref: quality against communication".into(),
        title: "Quality against communication".into(),
        caption: "Each run's last evaluation (or last round of training metrics without one), \
                  one row per codec setting (↑ client updates, ↓ the global adapter's change; \
                  megabytes a run sent both ways, exactly as encoded); mean with its 95 % \
                  percentile bootstrap interval over questions (and seeds); no tests across \
                  settings; best per row and benchmark in bold"
            .into(),
        row_header: "Codecs".into(),
        name: "communication".into(),
        axis: CostAxis {
            name: "communication-curve".into(),
            title: "Quality against communication".into(),
            label: "log10 megabytes per run".into(),
            caption: "Each benchmark against the megabytes a run sent, up and down (log10 \
                      scale), one line per method through the codec settings with its 95 % \
                      interval as a band."
                .into(),
        },
    }
}

/// The main report's traffic grid: per method, its codecs and the megabytes and seconds of
/// one run.
pub fn traffic_grid(sweep: &Sweep, methods: &[String]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let rows = methods
        .iter()
        .map(|method| {
            let traffic = Traffic::of_method(sweep, Some(method));
            vec![
                crate::order::method_label(method),
                codecs_label(sweep),
                format!("{:.2}", traffic.up),
                format!("{:.2}", traffic.down),
                format!("{:.2}", traffic.up + traffic.down),
                format!("{:.2}", traffic.encode_seconds),
                format!("{:.2}", traffic.decode_seconds),
            ]
        })
        .collect();
    let header = vec![
        "Method",
        "Codecs",
        "MB up / run",
        "MB down / run",
        "MB / run",
        "Encode s / run",
        "Decode s / run",
    ];
    (header, rows)
}

/// Writes the communication report of `sweeps` (one per codec setting) into `out`.
///
/// # Errors
/// [`crate::Error::Io`], [`crate::Error::Frame`] or [`crate::Error::Figure`] naming the file.
pub fn write_communication_report(sweeps: &[Sweep], out: &Path) -> Result<Report> {
    let settings = settings(sweeps);
    let rows: Vec<Vec<String>> = settings
        .iter()
        .map(|s| {
            let traffic = Traffic::of(s.sweep);
            vec![
                s.sweep.name.clone(),
                codecs_label(s.sweep),
                format!("{:.2}", traffic.up),
                format!("{:.2}", traffic.down),
                format!("{:.2}", traffic.up + traffic.down),
                format!("{:.2}", traffic.encode_seconds),
                format!("{:.2}", traffic.decode_seconds),
                s.sweep.runs.len().to_string(),
            ]
        })
        .collect();
    let header = [
        "Sweep",
        "Codecs",
        "MB up / run",
        "MB down / run",
        "MB / run",
        "Encode s / run",
        "Decode s / run",
        "Runs",
    ];
    write_tradeoff_report(&settings, &tradeoff(), (&header, &rows), out)
}

//! Whether a sweep's judge-scored numbers can be read: which benchmarks a judge scored, what
//! the judge check (`judge-check.json`) says, and the sentences and header notes the report
//! prints beside those numbers.
//!
//! A benchmark counts as judge-scored when its summaries report `unparsed` or
//! `position_consistency` (only a judge's replies go unparsed or flip with the order), or its
//! name says so (`mtbench`, `vicuna`, `judge`). The judge is trusted when the check's agreement
//! reaches its threshold (0.7 without one); below it the report calls the judge not
//! trustworthy, and without a check it calls it unchecked.

use std::collections::BTreeSet;

use crate::{frame::strings, order, JudgeCheck, Sweep};

/// How far the judge's scores can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The check's agreement reaches the threshold.
    Trusted,
    /// The check's agreement is below the threshold.
    NotTrusted,
    /// No check (or one without an agreement).
    Unchecked,
}

impl Trust {
    /// The verdict of `check`: trusted when its agreement reaches its threshold.
    pub fn of(check: Option<&JudgeCheck>) -> Trust {
        match check.and_then(|c| Some((c.agreement?, c.threshold()))) {
            Some((agreement, threshold)) if agreement >= threshold => Trust::Trusted,
            Some(_) => Trust::NotTrusted,
            None => Trust::Unchecked,
        }
    }
}

/// The judge of a sweep: its check, the verdict, and the benchmarks it scored.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeStatus {
    /// The check, when `judge-check.json` was found.
    pub check: Option<JudgeCheck>,
    /// The verdict.
    pub trust: Trust,
    /// Judge-scored benchmarks, in the report's order.
    pub benchmarks: Vec<String>,
}

/// Whether `benchmark`, whose summaries report `metrics`, was scored by a judge.
pub fn is_judged<'a>(benchmark: &str, mut metrics: impl Iterator<Item = &'a str>) -> bool {
    let name: String = benchmark
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    ["mtbench", "vicuna", "judge"]
        .iter()
        .any(|w| name.contains(w))
        || metrics.any(|m| m == "unparsed" || m == "position_consistency")
}

/// The judge status of `sweep`.
pub fn status(sweep: &Sweep) -> JudgeStatus {
    let (benchmark, metric) = (
        strings(&sweep.evals, "benchmark"),
        strings(&sweep.evals, "metric"),
    );
    let names: BTreeSet<String> = benchmark
        .iter()
        .chain(&strings(&sweep.eval_items, "benchmark"))
        .flatten()
        .cloned()
        .collect();
    let judged = names.into_iter().filter(|name| {
        let metrics = benchmark
            .iter()
            .zip(&metric)
            .filter(|(b, _)| b.as_ref() == Some(name))
            .filter_map(|(_, m)| m.as_deref());
        is_judged(name, metrics)
    });
    let check = sweep.judge_check.clone();
    JudgeStatus {
        trust: Trust::of(check.as_ref()),
        check,
        benchmarks: order::sorted(judged, order::benchmarks),
    }
}

fn percent(share: f64) -> String {
    format!("{:.1} %", 100.0 * share)
}

impl JudgeStatus {
    /// Whether the report needs a judge section: a judge scored something, or was checked.
    pub fn is_relevant(&self) -> bool {
        !self.benchmarks.is_empty() || self.check.is_some()
    }

    /// Whether judge-scored numbers are shown that are not to be read as results.
    pub fn warns(&self) -> bool {
        !self.benchmarks.is_empty() && self.trust != Trust::Trusted
    }

    /// The note a judge-scored benchmark's header carries when its numbers are not to be read
    /// as results.
    pub fn header_note(&self, benchmark: &str) -> Option<&'static str> {
        if !self.benchmarks.iter().any(|b| b == benchmark) {
            return None;
        }
        match self.trust {
            Trust::Trusted => None,
            Trust::NotTrusted => Some("judge not trustworthy"),
            Trust::Unchecked => Some("judge unchecked"),
        }
    }

    /// The judge-scored benchmarks as the paper names them (`MT-Bench, Vicuna`).
    fn benchmark_names(&self) -> String {
        let names: Vec<String> = self
            .benchmarks
            .iter()
            .map(|b| order::benchmark_label(b))
            .collect();
        names.join(", ")
    }

    /// The plain verdict the report prints above the judge-scored numbers.
    pub fn verdict(&self) -> String {
        let scored = if self.benchmarks.is_empty() {
            "No benchmark of these runs was scored by the judge.".to_owned()
        } else {
            format!("Judge-scored benchmarks: {}.", self.benchmark_names())
        };
        let check = self.check.clone().unwrap_or_default();
        let threshold = percent(check.threshold());
        match (self.trust, check.agreement) {
            (Trust::Trusted, Some(agreement)) => format!(
                "The judge passed its check: it preferred the better answer in {} of the \
                 checked verdicts (threshold {threshold}). {scored}",
                percent(agreement)
            ),
            (Trust::NotTrusted, Some(agreement)) => format!(
                "The judge is not trustworthy for this run: it preferred the better answer in \
                 only {} of the checked verdicts, below the threshold of {threshold}. {scored} \
                 Their numbers are shown for diagnosis only and are not results.",
                percent(agreement)
            ),
            _ => format!(
                "The judge is unchecked for this run: there is no judge check with an agreement \
                 beside the runs (`fedpref judge check` writes judge-check.json). {scored} \
                 Their numbers are unverified and are not results until the judge is checked."
            ),
        }
    }

    /// The check's numbers as (label, value) rows; empty without a check.
    pub fn check_rows(&self) -> Vec<(String, String)> {
        let Some(check) = &self.check else {
            return Vec::new();
        };
        let share = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), percent);
        vec![
            (
                "Judge".into(),
                check.judge.clone().unwrap_or_else(|| "—".into()),
            ),
            (
                "Protocol".into(),
                check.protocol.clone().unwrap_or_else(|| "—".into()),
            ),
            (
                "Pairs checked".into(),
                check.pairs.map_or_else(|| "—".into(), |p| p.to_string()),
            ),
            ("Agreement (both orders)".into(), share(check.agreement)),
            (
                "Agreement, better answer first".into(),
                share(check.agreement_better_first),
            ),
            (
                "Agreement, better answer second".into(),
                share(check.agreement_better_second),
            ),
            (
                "Position consistency".into(),
                share(check.position_consistency),
            ),
            ("Threshold".into(), percent(check.threshold())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(agreement: Option<f64>, threshold: Option<f64>) -> JudgeStatus {
        let check = JudgeCheck {
            agreement,
            threshold,
            ..JudgeCheck::default()
        };
        JudgeStatus {
            trust: Trust::of(Some(&check)),
            check: Some(check),
            benchmarks: vec!["mt-bench".into()],
        }
    }

    #[test]
    fn judged_by_metrics_or_name() {
        assert!(is_judged("mt-bench", std::iter::empty()));
        assert!(is_judged("mtbench-1.judgelm", std::iter::empty()));
        assert!(is_judged("Vicuna", std::iter::empty()));
        assert!(is_judged("custom", ["n", "unparsed"].into_iter()));
        assert!(is_judged("custom", ["position_consistency"].into_iter()));
        assert!(!is_judged("advbench", ["harmless_rate", "n"].into_iter()));
    }

    #[test]
    fn trust_follows_the_threshold() {
        let check = |agreement, threshold| JudgeCheck {
            agreement,
            threshold,
            ..JudgeCheck::default()
        };
        assert_eq!(Trust::of(Some(&check(Some(0.7), None))), Trust::Trusted);
        assert_eq!(Trust::of(Some(&check(Some(0.69), None))), Trust::NotTrusted);
        assert_eq!(
            Trust::of(Some(&check(Some(0.8), Some(0.9)))),
            Trust::NotTrusted
        );
        assert_eq!(Trust::of(Some(&check(None, Some(0.5)))), Trust::Unchecked);
        assert_eq!(Trust::of(None), Trust::Unchecked);
    }

    #[test]
    fn verdicts_and_notes() {
        let low = status(Some(0.55), None);
        assert!(low.verdict().starts_with("The judge is not trustworthy for this run: it preferred the better answer in only 55.0 % of the checked verdicts, below the threshold of 70.0 %."), "{}", low.verdict());
        assert_eq!(low.header_note("mt-bench"), Some("judge not trustworthy"));
        assert_eq!(low.header_note("advbench"), None);
        let good = status(Some(0.8), Some(0.75));
        assert!(good
            .verdict()
            .contains("80.0 % of the checked verdicts (threshold 75.0 %)"));
        assert_eq!(good.header_note("mt-bench"), None);
        let unchecked = JudgeStatus {
            check: None,
            trust: Trust::Unchecked,
            benchmarks: vec!["vicuna".into()],
        };
        assert!(unchecked
            .verdict()
            .starts_with("The judge is unchecked for this run"));
        assert!(unchecked
            .verdict()
            .contains("Judge-scored benchmarks: Vicuna."));
        assert_eq!(unchecked.header_note("vicuna"), Some("judge unchecked"));
        assert!(unchecked.check_rows().is_empty());
        assert_eq!(
            low.check_rows()[3],
            ("Agreement (both orders)".into(), "55.0 %".into())
        );
    }
}

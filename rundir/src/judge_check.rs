//! `<sweep>/judge-check.json`: how far the sweep's judge can be trusted, written by `fedpref
//! judge check` and read by the report. Every field is optional, so an older or newer writer
//! still reads.

use serde::{Deserialize, Serialize};

/// The file's name, beside the run directories.
pub const JUDGE_CHECK_FILE: &str = "judge-check.json";

/// The agreement a judge needs, when the file names no threshold.
pub const DEFAULT_THRESHOLD: f64 = 0.7;

/// What `fedpref judge check` measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JudgeCheck {
    /// The judge: its model file or name.
    pub judge: Option<String>,
    /// The judging protocol (`single-v1`, `pair-v2`, ...) and how verdicts were read.
    pub protocol: Option<String>,
    /// Pairs checked.
    pub pairs: Option<u64>,
    /// Share of pairs (in pair mode: of (pair, order) verdicts) that prefer the better answer,
    /// 0-1; a tie counts half.
    pub agreement: Option<f64>,
    /// The same, with the better answer shown first (pair mode).
    pub agreement_better_first: Option<f64>,
    /// The same, with the better answer shown second (pair mode).
    pub agreement_better_second: Option<f64>,
    /// Share of pairs whose verdict survives swapping the order, 0-1 (pair mode).
    pub position_consistency: Option<f64>,
    /// The agreement below which the judge is not to be trusted.
    pub threshold: Option<f64>,
    /// Agreement by how the worse answer was made (`off-topic`, `evasive`, `truncated`).
    pub agreement_by_kind: Option<std::collections::BTreeMap<String, f64>>,
    /// Seconds the check took.
    pub seconds: Option<f64>,
}

impl JudgeCheck {
    /// The file's threshold, else [`DEFAULT_THRESHOLD`].
    pub fn threshold(&self) -> f64 {
        self.threshold.unwrap_or(DEFAULT_THRESHOLD)
    }

    /// Whether the agreement reaches the threshold (false when unmeasured).
    pub fn passed(&self) -> bool {
        self.agreement.is_some_and(|a| a >= self.threshold())
    }
}

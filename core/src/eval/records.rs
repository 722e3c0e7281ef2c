//! The rows evaluation writes (run-directory layout, see [`fedpref_rundir`]):
//!
//! - `eval/<benchmark>.jsonl`, one [`ItemRow`] per scored item: `round`, `model`, `benchmark`,
//!   `id`, `category`, `prompt`, `answer`, `reference`, `score` (null when not scored),
//!   `outcome` (`scored`, `unparsed`, `failed`, or `pending` until a benchmark judged across
//!   methods has its verdict, written as a later row), `detail` (judge reply, matched keyword, error),
//!   `tokens`, `cached`;
//! - `metrics/evals.jsonl`, one [`SummaryRow`] per benchmark and evaluation:
//!   `{"round", "model", "benchmark", "scorer", "metrics": {name: value}, ...}`.
//!
//! `round` is the 0-based round whose global adapter was scored; `null` with `model = "base"`
//! for the base model alone (`fedpref eval --base`).

use std::collections::BTreeMap;

use fedpref_plugin_api::Outcome;
use serde::Serialize;

/// What was evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The global adapter after this 0-based round.
    Round(u32),
    /// The base model without adapter.
    Base,
}

impl Target {
    /// The `round` field.
    pub fn round(self) -> Option<u32> {
        match self {
            Target::Round(r) => Some(r),
            Target::Base => None,
        }
    }

    /// The `model` field: `global` or `base`.
    pub fn model(self) -> &'static str {
        match self {
            Target::Round(_) => "global",
            Target::Base => "base",
        }
    }
}

/// The `outcome` of an answer generated for a benchmark judged across methods, before the
/// sweep's judge has seen it; a later row for the same round and id carries the verdict.
pub const PENDING: &str = "pending";

/// The `outcome` field.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Scored => "scored",
        Outcome::Unparsed => "unparsed",
        Outcome::Failed => "failed",
    }
}

/// One line of `eval/<benchmark>.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct ItemRow<'a> {
    /// See [`Target::round`].
    pub round: Option<u32>,
    /// See [`Target::model`].
    pub model: &'static str,
    /// The benchmark's name.
    pub benchmark: &'a str,
    /// The item's id.
    pub id: &'a str,
    /// Its category (may be empty).
    pub category: &'a str,
    /// The prompt.
    pub prompt: &'a str,
    /// The model's answer (empty for held-out pairs).
    pub answer: &'a str,
    /// The reference answer, when there is one.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reference: &'a str,
    /// The score; `None` (null) unless scored.
    pub score: Option<f64>,
    /// `scored`, `unparsed` or `failed`.
    pub outcome: &'static str,
    /// The judge's reply, the matched keyword or the error.
    pub detail: &'a str,
    /// Tokens generated for the answer.
    pub tokens: usize,
    /// The answer came from the cache.
    pub cached: bool,
}

/// Generation counts of one benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GenerationSummary {
    /// Answers generated now.
    pub generated: usize,
    /// Answers taken from the cache.
    pub cached: usize,
    /// Tokens generated now.
    pub tokens: usize,
    /// Seconds spent generating.
    pub seconds: f64,
    /// `tokens / seconds` (0 when nothing was generated).
    pub tokens_per_second: f64,
}

/// One line of `metrics/evals.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    /// See [`Target::round`].
    pub round: Option<u32>,
    /// See [`Target::model`].
    pub model: &'static str,
    /// The benchmark's name.
    pub benchmark: String,
    /// The scorer component.
    pub scorer: String,
    /// The scorer's summary metrics (finite values only).
    pub metrics: BTreeMap<String, f64>,
    /// Items scored (broken records included).
    pub items: usize,
    /// Records of the prompt file that could not be read.
    pub invalid_records: usize,
    /// Generation counts.
    pub generation: GenerationSummary,
    /// Seconds for the whole benchmark (generation, log-probs, scoring).
    pub seconds: f64,
    /// Set when the scorer failed as a whole; `metrics` is then empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

//! The `[data]` section of a run config: which file, which layout, what to do with invalid
//! records and overlong examples, and which columns feed the partitioners.
//!
//! Read by figment into [`DataConfig`] (unknown keys are errors); [`DataConfig::validate`] runs
//! the cross-field checks before anything is loaded.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::format::Format;
use crate::{Error, Result};

/// What to do with a record that fails validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnInvalid {
    /// Stop with an error listing the first problems and their count.
    #[default]
    Error,
    /// Skip the record and count it by reason (recorded in the run manifest).
    Skip,
}

/// What to do with an example longer than `max_length` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overlong {
    /// Truncate as TRL does: the prompt's start first (keeping its end), then the answers' ends.
    #[default]
    Truncate,
    /// Leave the example out (and count it).
    Drop,
}

/// The data settings of a run.
///
/// ```toml
/// [data]
/// path = "assets/data/dpo_en_demo.json"
/// format = "auto"          # or trl-paired, trl-unpaired, sharegpt-paired, sharegpt-kto
/// eval_fraction = 0.1      # or eval_path = "held_out.jsonl"
/// on_invalid = "skip"      # default "error"
/// overlong = "truncate"    # or "drop"
/// max_length = 512
/// max_prompt_length = 256
/// group_key = "user_id"    # default: user_id or client_id when present; "" for none
/// category_key = "topic"   # default: length buckets
/// n_buckets = 4
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The training data file (JSON array or JSON Lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The record layout, or `auto`.
    pub format: Format,
    /// A separate held-out evaluation file (same formats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_path: Option<PathBuf>,
    /// Share of the training file held out for evaluation, in `[0, 1)`; 0 for none.
    pub eval_fraction: f64,
    /// Stop on invalid records, or skip and count them.
    pub on_invalid: OnInvalid,
    /// Truncate or drop examples over `max_length` tokens.
    pub overlong: Overlong,
    /// Most tokens of prompt plus answer (TRL's `max_length`).
    pub max_length: usize,
    /// Most prompt tokens kept when truncating (TRL's `max_prompt_length`).
    pub max_prompt_length: usize,
    /// The user or client id column; unset detects `user_id` then `client_id`; `""` for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// The category column for `dirichlet`; unset uses length buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_key: Option<String>,
    /// Number of length quantile buckets used as categories when `category_key` is unset.
    pub n_buckets: usize,
    /// Use only the first `limit` valid training examples (quick experiments); `None`: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            path: None,
            format: Format::Auto,
            eval_path: None,
            eval_fraction: 0.0,
            on_invalid: OnInvalid::Error,
            overlong: Overlong::Truncate,
            max_length: 512,
            max_prompt_length: 256,
            group_key: None,
            category_key: None,
            n_buckets: 4,
            limit: None,
        }
    }
}

impl DataConfig {
    /// The group columns tried, in order, when `group_key` is unset.
    pub const DEFAULT_GROUP_KEYS: [&'static str; 2] = ["user_id", "client_id"];

    /// Checks ranges and combinations (the path itself is checked when loading).
    ///
    /// # Errors
    /// [`Error::DataConfig`] naming the key, the bad value and what is expected.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, message: String| Err(Error::DataConfig { key, message });
        if !(0.0..1.0).contains(&self.eval_fraction) {
            return bad(
                "eval_fraction",
                format!("{} is outside [0, 1)", self.eval_fraction),
            );
        }
        if self.eval_fraction > 0.0 && self.eval_path.is_some() {
            return bad(
                "eval_fraction",
                "is set together with data.eval_path; keep one of them".to_owned(),
            );
        }
        if self.max_prompt_length == 0 || self.max_prompt_length >= self.max_length {
            return bad(
                "max_prompt_length",
                format!(
                    "{} must be at least 1 and below max_length = {} (answers need room)",
                    self.max_prompt_length, self.max_length
                ),
            );
        }
        if self.n_buckets == 0 {
            return bad("n_buckets", "0 must be at least 1".to_owned());
        }
        Ok(())
    }

    /// The group column to read: the configured one (`None` when `""`), or `None` to detect.
    pub fn group_key_setting(&self) -> GroupKey<'_> {
        match self.group_key.as_deref() {
            None => GroupKey::Detect,
            Some("") => GroupKey::None,
            Some(key) => GroupKey::Named(key),
        }
    }
}

/// How the group column is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKey<'a> {
    /// `user_id` or `client_id` when the records have one.
    Detect,
    /// No group column.
    None,
    /// This column, required in every record.
    Named(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_trl_and_the_issue() {
        let c = DataConfig::default();
        assert_eq!(
            (c.max_length, c.max_prompt_length, c.n_buckets),
            (512, 256, 4)
        );
        assert!(c.validate().is_ok());
        let parsed: DataConfig = serde_json::from_str(
            r#"{"path": "x.jsonl", "on_invalid": "skip", "overlong": "drop"}"#,
        )
        .unwrap();
        assert_eq!(parsed.on_invalid, OnInvalid::Skip);
        assert_eq!(parsed.overlong, Overlong::Drop);
        let err = serde_json::from_str::<DataConfig>(r#"{"pth": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `pth`"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let c = DataConfig {
            eval_fraction: 1.0,
            ..DataConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "data.eval_fraction: 1 is outside [0, 1)"
        );
        let c = DataConfig {
            eval_fraction: 0.1,
            eval_path: Some("e.json".into()),
            ..DataConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("keep one of them"));
        let c = DataConfig {
            max_prompt_length: 512,
            ..DataConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("data.max_prompt_length: 512"));
        assert_eq!(
            DataConfig {
                group_key: Some(String::new()),
                ..DataConfig::default()
            }
            .group_key_setting(),
            GroupKey::None
        );
    }
}

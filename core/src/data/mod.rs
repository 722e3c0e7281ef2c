//! Preference data: loading, validation, views, held-out splits and the host side of
//! partitioning.
//!
//! ```text
//! file (JSON array | JSON Lines) --source--> raw records --format--> layout
//!      --record--> validated Examples (Dataset; invalid ones stop the load or are counted)
//!      --eval_split--> train + held-out eval
//!      --meta--> ExampleMeta[] --partitioner plugin--> PartitionOutput --ClientData--> per-client (example, view)
//!      --length (after tokenization)--> kept / truncated / dropped
//! ```
//!
//! - [`load`] reads any supported layout ([`Layout`]: TRL paired and unpaired, ShareGPT /
//!   LLaMA-Factory ranking and KTO), detected or named in [`DataConfig`].
//! - [`Example`] keeps prompts as [`Message`] lists for the model's chat template.
//! - [`require_pairs`] rejects a paired loss on single-answer data before any model loads.
//! - [`example_metas`] and [`ClientData`] connect a data set to the partitioner plugins.
//! - [`fit_lengths`] truncates token ids as TRL does.
//! - [`inspect()`] builds the report of `fedpref data inspect`.
//!
//! ```no_run
//! use fedpref::data::{load, require_pairs, DataConfig};
//!
//! let config = DataConfig { on_invalid: fedpref::data::OnInvalid::Skip, ..DataConfig::default() };
//! let data = load("assets/data/dpo_en_demo.json".as_ref(), &config)?;
//! require_pairs(&data, "dpo")?;
//! println!("{} pairs, {} records skipped", data.n_pairs(), data.invalid.total());
//! # Ok::<(), fedpref::Error>(())
//! ```

mod client_data;
mod config;
mod dataset;
mod eval_split;
mod example;
mod format;
pub mod inspect;
mod length;
mod load;
mod message;
mod meta;
mod record;
mod source;
mod table;
#[cfg(test)]
mod tests;
mod tokenize;
mod views;

pub(crate) use crate::error::record::json_type;
pub use crate::error::record::{
    format_issues, FileKind, InvalidCounts, Issue, Location, Problem, Reason,
};
pub use client_data::{ClientCounts, ClientData};
pub use config::{DataConfig, GroupKey, OnInvalid, Overlong};
pub use dataset::Dataset;
pub use eval_split::{load_splits, split_eval, Splits};
pub use example::{Answers, Example};
pub use format::{Format, Layout};
pub use inspect::{inspect, InspectReport, Percentiles, TokenLengths};
pub use length::{fit_lengths, Fit, Fitted, LengthCounts, LengthLimits};
pub use load::{load, load_bytes, MAX_REPORTED};
pub use message::{Message, Role};
pub use meta::{example_metas, example_metas_with_lengths, length_buckets};
pub use tokenize::{tokenize, TokenizedDataset, TokenizedExample};
pub use views::{require_pairs, ExampleView};

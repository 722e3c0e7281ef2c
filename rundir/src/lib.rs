//! fedpref-rundir: the run directory, what a run writes, where, and how a resumed run finds its
//! place. The host writes it ([`RunDir`], [`JsonLines`], [`write_atomic`], [`Manifest`]) and
//! analysis reads it with the same types, so the two cannot drift apart.
//!
//! Layout version 1 (analysis reads only what is listed here):
//!
//! ```text
//! <output_dir>/<experiment>/             the sweep directory
//!   cache/reference-logprobs.bin         reference log-probs shared by the sweep's runs
//!   <method>-<aggregator>-s<seed>/       one run
//!     .lock                              held by the process writing the run (advisory)
//!     config.toml                        the resolved config of this run
//!     manifest.json                      versions, plugins (file, version), seed, data counts,
//!                                        partition summary, status, rounds completed
//!     metrics/steps.jsonl                one JSON object per local optimizer step
//!     metrics/rounds.jsonl               one JSON object per round
//!     metrics/evals.jsonl                one JSON object per benchmark and evaluation
//!     eval/<benchmark>.jsonl             one JSON object per scored item (fields: eval::records)
//!     eval/cache/answers.jsonl           generated answers by (model, adapter, prompt, settings)
//!     checkpoints/round-NNNN/            adapter_model.safetensors, adapter_config.json,
//!                                        aggregator.bin, clients.bin, state.json
//!     checkpoints/latest                 the name of the newest complete checkpoint
//! ```
//!
//! Metrics files are append-only; each checkpoint records their byte lengths, and resuming
//! truncates them back to those lengths, so rows of an unfinished round never appear twice.
//! A checkpoint is written to `round-NNNN.tmp`, synced, then renamed, and `latest` is replaced
//! the same way, so a kill at any moment leaves the previous checkpoint intact.

#![warn(missing_docs)]

mod error;
mod files;
pub mod judge_check;
mod layout;
pub mod manifest;

pub use error::{Error, Result};
pub use files::{write_atomic, JsonLines};
pub use judge_check::{JudgeCheck, DEFAULT_THRESHOLD, JUDGE_CHECK_FILE};
pub use layout::{checkpoint_round, RunDir, RunLock, LAYOUT_VERSION};
pub use manifest::{
    DataSummary, Machine, Manifest, PartitionSummary, PluginRecord, PrivacySummary, RunStatus,
};

//! The stable plugin ABI of fedpref.
//!
//! A plugin is a `cdylib` that exports one [`PluginMod`] root module through
//! [`export_plugin!`]. It provides components of five kinds, each a small trait over plain
//! slices (never tensors):
//!
//! - [`LossFunction`]: a preference loss over per-sequence log-probabilities, returning the loss
//!   and its gradient with respect to each policy log-probability;
//! - [`AggregatorFunction`]: the server's update rule over flat `f32` parameter vectors;
//! - [`PartitionerFunction`]: how examples (or their single answers) are dealt out to clients;
//! - [`ScorerFunction`]: a benchmark metric over generated answers;
//! - [`CodecFunction`]: how a flat `f32` update becomes the bytes sent over the network.
//!
//! Plugin authors implement these plain-Rust traits and register them on a [`Plugin`]; the
//! `*Box` adapters turn them into abi_stable trait objects whose every call is wrapped in
//! [`guard`], so a panic comes back to the host as an error.
//!
//! ```text
//! fn plugin() -> fedpref_plugin_api::Plugin {
//!     Plugin::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
//!         .loss("dpo", "Direct Preference Optimization", DPO_SPEC, Dpo::from_params)
//! }
//! fedpref_plugin_api::export_plugin!(plugin);
//! ```
//!
//! # Compatibility
//! abi_stable checks at load time that the plugin's types have the layout the host expects and
//! that both were built against compatible versions of this crate (same minor version while
//! below 1.0). Any change to a type here bumps this crate's version.
//!
//! # Changes
//! - **0.3.0**: a fifth component kind, codecs ([`CodecFunction`], [`CodecSpec`],
//!   [`Plugin::codec`], [`ComponentKind::Codec`]), and the root module's `new_codec`, appended
//!   after its last prefix field. Nothing else changed, but a new kind changes
//!   [`ComponentKind`]'s layout, so plugins built against 0.2 are refused and rebuild as they
//!   are.
//! - **0.2.0**: fields appended (the layouts changed, so the host refuses plugins built against
//!   0.1; a plugin that builds these types field by field adds the new fields, one that starts
//!   from [`ClientPlan::plain`] or `..` compiles as it is):
//!   - [`ClientPlan::weight_offset`]: a vector the host subtracts, times the learning rate, from
//!     the parameters after every optimizer step (SCAFFOLD's correction as OpenFedLLM applies
//!     it, outside clipping and Adam's normalization);
//!   - [`LossBatch::client_desirable`] and [`LossBatch::client_undesirable`]: the label counts
//!     of the client's whole training data (KTO's `desirable_weight = "auto"`);
//!   - [`PartitionInput::client_sizes`]: the client sizes of the partition a rule rearranges
//!     (KTOR's `redistribute` keeps them);
//!   - [`ScoreItem::answers`] and [`ItemScore::scores`]: several answers judged in one prompt
//!     (JudgeLM's multi-answer protocol);
//!   - `HostServices::option_logprobs` with [`OptionsRequest`]: a judge reads the probabilities
//!     of its verdict's options instead of sampling text.
//! - **0.1.0**: the first version.
#![deny(missing_docs)]
// `#[sabi_trait]` (abi_stable 0.11) expands its impls inside a `const _` block.
#![allow(non_local_definitions)]

mod aggregator;
mod codec;
mod error;
mod guard;
mod loss;
mod manifest;
pub mod math;
mod metric;
mod module;
pub mod paired;
mod params;
mod partitioner;
mod scorer;
pub mod state;
pub mod testing;

pub use aggregator::*;
pub use codec::*;
pub use error::{ErrorKind, PluginError};
pub use guard::guard;
pub use loss::*;
pub use manifest::{ComponentInfo, ComponentKind, PluginManifest};
pub use metric::Metric;
pub use module::{Plugin, PluginMod, PluginModRef};
pub use params::{check_non_negative, check_positive, check_range, Params};
pub use partitioner::*;
pub use scorer::*;

/// The version of this API crate; plugins record the one they were built against.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests;

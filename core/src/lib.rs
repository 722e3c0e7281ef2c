//! fedpref: federated preference fine-tuning of language models.
//!
//! The host side of the workbench: it loads plugins ([`plugin_host`]) and, through them, runs
//! preference losses, aggregators, partitioners, scorers and update codecs.
#![warn(missing_docs)]

pub mod compression;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod federation;
pub mod plugin_host;
pub mod privacy;
pub mod progress;
pub mod train;

pub use error::{Error, Result};
pub use plugin_host::PluginHost;

//! `[compression]`: which codecs the uplink and downlink use (composed into the experiment
//! config; codec parameters live in `[codecs.<name>]`).

use serde::{Deserialize, Serialize};

/// The config value for no codec: raw float32, as before codecs existed.
pub const NO_CODEC: &str = "none";

/// `[compression]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionSection {
    /// The codec of client updates, or `"none"`.
    pub uplink: String,
    /// The codec of the global adapter's change, or `"none"`.
    pub downlink: String,
    /// Carry what a biased uplink codec drops into the client's next update.
    pub error_feedback: bool,
}

impl Default for CompressionSection {
    fn default() -> Self {
        Self {
            uplink: NO_CODEC.to_owned(),
            downlink: NO_CODEC.to_owned(),
            error_feedback: true,
        }
    }
}

impl CompressionSection {
    /// Left out of a run's `config.toml` when off, so runs written before the section existed
    /// still match their config.
    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }

    /// The uplink codec's name, unless none.
    pub fn uplink_codec(&self) -> Option<&str> {
        (self.uplink != NO_CODEC).then_some(self.uplink.as_str())
    }

    /// The downlink codec's name, unless none.
    pub fn downlink_codec(&self) -> Option<&str> {
        (self.downlink != NO_CODEC).then_some(self.downlink.as_str())
    }
}

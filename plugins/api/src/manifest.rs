//! What a plugin says about itself: its name, version, API version and components.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

use crate::LossSpec;

/// The kinds of component a plugin can provide.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    /// A preference loss.
    Loss,
    /// A server aggregation rule.
    Aggregator,
    /// A data partition rule.
    Partitioner,
    /// A benchmark scorer.
    Scorer,
    /// An update codec (since API 0.3).
    Codec,
}

impl ComponentKind {
    /// Every kind, in display order.
    pub const ALL: [ComponentKind; 5] = [
        ComponentKind::Loss,
        ComponentKind::Aggregator,
        ComponentKind::Partitioner,
        ComponentKind::Scorer,
        ComponentKind::Codec,
    ];

    /// The lowercase name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Loss => "loss",
            ComponentKind::Aggregator => "aggregator",
            ComponentKind::Partitioner => "partitioner",
            ComponentKind::Scorer => "scorer",
            ComponentKind::Codec => "codec",
        }
    }
}

impl std::fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One component a plugin provides.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ComponentInfo {
    /// Its kind.
    pub kind: ComponentKind,
    /// The name configs use (`dpo`, `fedavg`), unique per kind across all loaded plugins.
    pub name: RString,
    /// One line: what it is and where it comes from.
    pub summary: RString,
    /// For losses, what they need from the host.
    pub loss_spec: ROption<LossSpec>,
}

/// The manifest every plugin exports.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PluginManifest {
    /// The plugin's name (its package name by convention).
    pub name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// The version of `fedpref-plugin-api` it was built against.
    pub api_version: RString,
    /// The components it provides.
    pub components: RVec<ComponentInfo>,
}

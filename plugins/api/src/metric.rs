//! Named scalar metrics reported by plugins (losses, partitioners, scorers).

use abi_stable::{std_types::RString, StableAbi};

/// One named number, e.g. `rewards/margins`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Metric {
    /// Slash-separated name as TRL reports it (`rewards/chosen`, `kl`).
    pub name: RString,
    /// The value; NaN means "not defined for this batch" (e.g. a mean over zero examples).
    pub value: f64,
}

impl Metric {
    /// A metric called `name` with `value`.
    pub fn new(name: &str, value: f64) -> Self {
        Self {
            name: RString::from(name),
            value,
        }
    }
}

//! Byzantine-robust aggregation for fedpref, for federations with faulty or malicious clients:
//!
//! | component      | type            | rule                                          |
//! |----------------|-----------------|-----------------------------------------------|
//! | `median`       | [`Median`]      | coordinate-wise median (Yin et al. 2018)      |
//! | `trimmed-mean` | [`TrimmedMean`] | coordinate-wise trimmed mean (Yin et al. 2018)|
//! | `krum`         | [`Krum`]        | Krum (Blanchard et al. 2017)                  |
//! | `multi-krum`   | [`Krum`]        | Multi-Krum (Blanchard et al. 2017)            |
//!
//! Each type's docs give its formula and parameters. The rules are unweighted (a faulty client
//! could claim any example count), keep no state (their checkpoint is the
//! [`state`](fedpref_plugin_api::state) header alone) and report what they kept as metrics.
//! [`round`] holds the per-coordinate arithmetic they share.
//!
//! ```
//! use abi_stable::std_types::RSlice;
//! use fedpref_plugin_api::{AggregationInput, ClientUpdate};
//!
//! let plugin = fedpref_aggregator_robust::plugin();
//! let mut median = plugin.new_aggregator("median", "").unwrap();
//! let (global, a, b, c) = ([0.0f32], [1.0f32], [2.0f32], [1e9f32]);
//! let update = |client, params| ClientUpdate {
//!     client, params, n_examples: 1, local_steps: 1, learning_rate: 1e-4,
//! };
//! let updates = [update(0, RSlice::from_slice(&a)), update(1, RSlice::from_slice(&b)), update(2, RSlice::from_slice(&c))];
//! let input = AggregationInput {
//!     round: 0, n_clients: 3, global: RSlice::from_slice(&global), updates: RSlice::from_slice(&updates),
//! };
//! // The outlier at 1e9 does not move the median.
//! assert_eq!(median.aggregate(&input).into_result().unwrap().global.as_slice(), &[2.0]);
//! ```

pub mod krum;
pub mod median;
pub mod round;
#[cfg(test)]
mod tests;
pub mod trimmed_mean;

use fedpref_plugin_api::Plugin;
pub use krum::Krum;
pub use median::Median;
pub use trimmed_mean::TrimmedMean;

/// The components this library provides.
pub fn plugin() -> Plugin {
    Plugin::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .aggregator(
            "median",
            "coordinate-wise median of the client parameters (Yin et al. 2018)",
            Median::from_params,
        )
        .aggregator(
            "trimmed-mean",
            "coordinate-wise mean after dropping the trim fraction at each end (Yin et al. 2018)",
            TrimmedMean::from_params,
        )
        .aggregator(
            "krum",
            "Krum (Blanchard et al. 2017): the client closest to its m - f - 2 nearest neighbours",
            Krum::krum_from_params,
        )
        .aggregator(
            "multi-krum",
            "Multi-Krum (Blanchard et al. 2017): the mean of the keep clients with the best Krum scores",
            Krum::multi_krum_from_params,
        )
}

fedpref_plugin_api::export_plugin!(plugin);

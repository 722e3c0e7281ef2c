//! Server update rules for fedpref as one aggregator plugin: FedAvg, FedProx, SCAFFOLD,
//! FedAvgM, FedAdagrad, FedYogi and FedAdam.
//!
//! | component    | type                      | rule                                          |
//! |--------------|---------------------------|-----------------------------------------------|
//! | `fedavg`     | [`FedAvg`]                | McMahan et al. 2017                           |
//! | `fedprox`    | [`FedProx`]               | Li et al. 2020 (client proximal term)         |
//! | `scaffold`   | [`Scaffold`]              | Karimireddy et al. 2020, option II            |
//! | `fedavgm`    | [`FedAvgM`]               | Hsu et al. 2019                               |
//! | `fedadagrad` | [`FedAdaptive`] (Adagrad) | Reddi et al. 2021, Algorithm 2                |
//! | `fedyogi`    | [`FedAdaptive`] (Yogi)    | Reddi et al. 2021, Algorithm 2                |
//! | `fedadam`    | [`FedAdaptive`] (Adam)    | Reddi et al. 2021, Algorithm 2                |
//!
//! Each type's docs give its formula, parameters and state layout. The server-optimizer rules
//! take `variant = "openfedllm"` for the formulas of OpenFedLLM's `fed_global.py`, which the
//! reproduced study (arXiv 2502.14187) ran. The host hands each round the flat LoRA vector
//! `w_t` and every sampled client's parameters `y_i` ([`round`] checks them), applies the
//! [`ClientPlan`](fedpref_plugin_api::ClientPlan) during local training, and checkpoints the
//! bytes of [`fedpref_plugin_api::state`].
//!
//! ```
//! use abi_stable::std_types::RSlice;
//! use fedpref_plugin_api::{AggregationInput, ClientUpdate};
//!
//! let plugin = fedpref_aggregator_fedopt::plugin();
//! let mut fedavg = plugin.new_aggregator("fedavg", "").unwrap();
//! let (global, a, b) = ([0.0f32, 0.0], [1.0f32, 2.0], [3.0f32, 6.0]);
//! let update = |client, params, n_examples| ClientUpdate {
//!     client, params, n_examples, local_steps: 1, learning_rate: 1e-4,
//! };
//! let updates = [update(0, RSlice::from_slice(&a), 1), update(1, RSlice::from_slice(&b), 3)];
//! let input = AggregationInput {
//!     round: 0, n_clients: 2, global: RSlice::from_slice(&global), updates: RSlice::from_slice(&updates),
//! };
//! // (1 · [1, 2] + 3 · [3, 6]) / 4
//! let out = fedavg.aggregate(&input).into_result().unwrap();
//! assert_eq!(out.global.as_slice(), &[2.5, 5.0]);
//! ```

pub mod adaptive;
pub mod fedavg;
pub mod fedavgm;
pub mod options;
pub mod round;
pub mod scaffold;
#[cfg(test)]
mod tests;

pub use adaptive::{Adaptivity, FedAdaptive};
pub use fedavg::{FedAvg, FedProx};
pub use fedavgm::FedAvgM;
use fedpref_plugin_api::Plugin;
pub use options::{Variant, Weighting};
pub use scaffold::{Correction, Scaffold};

/// The components this library provides.
pub fn plugin() -> Plugin {
    Plugin::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .aggregator(
            "fedavg",
            "Federated Averaging (McMahan et al. 2017): the example-weighted mean of the client parameters",
            FedAvg::from_params,
        )
        .aggregator(
            "fedprox",
            "FedProx (Li et al. 2020): FedAvg on the server, proximal term mu (w - w_global) on the clients",
            FedProx::from_params,
        )
        .aggregator(
            "scaffold",
            "SCAFFOLD (Karimireddy et al. 2020, option II): control variates correct client drift",
            Scaffold::from_params,
        )
        .aggregator(
            "fedavgm",
            "FedAvgM (Hsu et al. 2019): FedAvg with server momentum",
            FedAvgM::from_params,
        )
        .aggregator(
            "fedadagrad",
            "FedAdagrad (Reddi et al. 2021): Adagrad on the averaged client delta",
            |params| FedAdaptive::from_params(Adaptivity::Adagrad, params),
        )
        .aggregator(
            "fedyogi",
            "FedYogi (Reddi et al. 2021): Yogi on the averaged client delta",
            |params| FedAdaptive::from_params(Adaptivity::Yogi, params),
        )
        .aggregator(
            "fedadam",
            "FedAdam (Reddi et al. 2021): Adam without bias correction on the averaged client delta",
            |params| FedAdaptive::from_params(Adaptivity::Adam, params),
        )
}

fedpref_plugin_api::export_plugin!(plugin);

//! Tests of the fedopt aggregators against values computed by hand from the published formulas
//! (exact fractions where the arithmetic allows, f64 elsewhere; never through this crate's
//! helpers), over three rounds that carry state, plus state round trips, input and parameter
//! checks, and the exported FFI entry points.
//!
//! The shared fixture, [`rounds`], is a federation of `N = 4` clients and `p = 3` parameters:
//!
//! | round | global `w_t`           | clients (n_i, K_i, η_l)                              |
//! |-------|------------------------|------------------------------------------------------|
//! | 0     | [0.5, −1, 2]           | 0 (1, 4, 1/8), 2 (2, 2, 1/4), 3 (5, 8, 1/4)          |
//! | 1     | [0.625, −1.125, 1.875] | 0 (3, 4, 1/8), 1 (1, 2, 1/4), 3 (4, 8, 1/4)          |
//! | 2     | [0.75, −1, 1.75]       | 2 (2, 2, 1/4), 3 (6, 8, 1/4)                          |
//!
//! Every input is a short binary fraction, so inputs are exact in `f32` and example weights
//! (eighths) and `1/(K η_l)` are exact in binary.

mod adaptive;
mod edges;
mod fedavg;
mod fedavgm;
mod ffi;
mod scaffold;
mod state;

pub use fedpref_plugin_api::testing::{
    aggregation::{assert_close, Client, Round},
    assert_error,
};
use fedpref_plugin_api::{AggregatorFunction, Params, PluginError};

use crate::{Adaptivity, FedAdaptive, FedAvg, FedAvgM, FedProx, Scaffold};

fn client(
    client: u32,
    params: [f32; 3],
    n_examples: u64,
    local_steps: u32,
    learning_rate: f32,
) -> Client {
    Client {
        client,
        params: params.to_vec(),
        n_examples,
        local_steps,
        learning_rate,
    }
}

/// The three rounds of the table above.
pub fn rounds() -> Vec<Round> {
    vec![
        Round {
            round: 0,
            n_clients: 4,
            global: vec![0.5, -1.0, 2.0],
            clients: vec![
                client(0, [1.0, -0.5, 2.0], 1, 4, 0.125),
                client(2, [0.25, -1.5, 2.5], 2, 2, 0.25),
                client(3, [0.75, -1.25, 1.5], 5, 8, 0.25),
            ],
        },
        Round {
            round: 1,
            n_clients: 4,
            global: vec![0.625, -1.125, 1.875],
            clients: vec![
                client(0, [0.5, -1.0, 2.25], 3, 4, 0.125),
                client(1, [1.0, -1.25, 1.75], 1, 2, 0.25),
                client(3, [0.875, -0.75, 1.5], 4, 8, 0.25),
            ],
        },
        Round {
            round: 2,
            n_clients: 4,
            global: vec![0.75, -1.0, 1.75],
            clients: vec![
                client(2, [0.5, -1.5, 2.0], 2, 2, 0.25),
                client(3, [1.25, -0.5, 1.25], 6, 8, 0.25),
            ],
        },
    ]
}

/// The component `name` with JSON `params`, as a plain-Rust aggregator.
pub fn make(name: &str, params: &str) -> Box<dyn AggregatorFunction> {
    try_make(name, params).unwrap_or_else(|e| panic!("{name} {params}: {e}"))
}

/// Like [`make`], returning the constructor's error.
pub fn try_make(name: &str, params: &str) -> Result<Box<dyn AggregatorFunction>, PluginError> {
    let params = Params::parse(params)?;
    Ok(match name {
        "fedavg" => Box::new(FedAvg::from_params(&params)?),
        "fedprox" => Box::new(FedProx::from_params(&params)?),
        "scaffold" => Box::new(Scaffold::from_params(&params)?),
        "fedavgm" => Box::new(FedAvgM::from_params(&params)?),
        "fedadagrad" => Box::new(FedAdaptive::from_params(Adaptivity::Adagrad, &params)?),
        "fedyogi" => Box::new(FedAdaptive::from_params(Adaptivity::Yogi, &params)?),
        "fedadam" => Box::new(FedAdaptive::from_params(Adaptivity::Adam, &params)?),
        other => panic!("no component {other}"),
    })
}

/// Every component of the plugin with parameters that make each of its state fields move.
pub const ALL: [(&str, &str); 11] = [
    ("fedavg", ""),
    ("fedprox", r#"{"mu": 0.1}"#),
    ("scaffold", ""),
    ("scaffold", r#"{"variant": "openfedllm", "server_lr": 0.5}"#),
    ("fedavgm", r#"{"momentum": 0.5}"#),
    ("fedavgm", r#"{"variant": "openfedllm"}"#),
    (
        "fedadagrad",
        r#"{"server_lr": 0.1, "tau": 0.1, "beta1": 0.5}"#,
    ),
    (
        "fedyogi",
        r#"{"server_lr": 0.1, "tau": 0.1, "beta1": 0.5, "beta2": 0.9}"#,
    ),
    (
        "fedadam",
        r#"{"server_lr": 0.1, "tau": 0.1, "beta1": 0.5, "beta2": 0.9}"#,
    ),
    ("fedyogi", r#"{"variant": "openfedllm"}"#),
    (
        "fedadam",
        r#"{"variant": "openfedllm", "weighting": "examples"}"#,
    ),
];

//! Tests of the robust aggregators against values computed by hand, the outlier they must
//! ignore, Krum's choice and tie-break on hand examples, input and parameter checks, the state
//! header, and the exported FFI entry points.
//!
//! The shared fixture, [`with_outlier`], has four honest clients and one faulty client (4) that
//! sends ±1e30 in every coordinate:
//!
//! | client | parameters              |
//! |--------|-------------------------|
//! | 0      | [1, −2, 0.5, 3]         |
//! | 1      | [2, −1, 0.25, 2]        |
//! | 2      | [1.5, −3, 1, 2.5]       |
//! | 3      | [3, −1.5, 0.75, 1]      |
//! | 4      | [1e30, −1e30, 1e30, 1e30] |

mod edges;
mod ffi;
mod krum;
mod median;
mod trimmed_mean;

use abi_stable::std_types::RSlice;
use fedpref_plugin_api::{
    AggregationInput, AggregationOutput, AggregatorFunction, ClientUpdate, ErrorKind, Params,
    PluginError,
};

use crate::{Krum, Median, TrimmedMean};

/// One round's owned input; every client holds one example.
#[derive(Debug, Clone)]
pub struct Round {
    pub n_clients: u32,
    pub global: Vec<f32>,
    pub clients: Vec<(u32, Vec<f32>)>,
}

impl Round {
    /// A round from `(client, parameters)` pairs, in the order given.
    pub fn new(n_clients: u32, clients: &[(u32, &[f32])]) -> Self {
        let p = clients.first().map_or(0, |c| c.1.len());
        Self {
            n_clients,
            global: vec![0.0; p],
            clients: clients.iter().map(|&(c, v)| (c, v.to_vec())).collect(),
        }
    }

    pub fn updates(&self) -> Vec<ClientUpdate<'_>> {
        self.clients
            .iter()
            .map(|(client, params)| ClientUpdate {
                client: *client,
                params: RSlice::from_slice(params),
                n_examples: 1,
                local_steps: 1,
                learning_rate: 1e-4,
            })
            .collect()
    }

    pub fn run(
        &self,
        aggregator: &mut dyn AggregatorFunction,
    ) -> Result<AggregationOutput, PluginError> {
        let updates = self.updates();
        let input = AggregationInput {
            round: 0,
            n_clients: self.n_clients,
            global: RSlice::from_slice(&self.global),
            updates: RSlice::from_slice(&updates),
        };
        aggregator.aggregate(&input)
    }

    /// Without client `client`.
    pub fn without(&self, client: u32) -> Self {
        let mut out = self.clone();
        out.clients.retain(|(c, _)| *c != client);
        out
    }
}

pub const HONEST: [[f32; 4]; 4] = [
    [1.0, -2.0, 0.5, 3.0],
    [2.0, -1.0, 0.25, 2.0],
    [1.5, -3.0, 1.0, 2.5],
    [3.0, -1.5, 0.75, 1.0],
];
pub const OUTLIER: [f32; 4] = [1e30, -1e30, 1e30, 1e30];

/// The table above.
pub fn with_outlier() -> Round {
    Round::new(
        5,
        &[
            (0, &HONEST[0]),
            (1, &HONEST[1]),
            (2, &HONEST[2]),
            (3, &HONEST[3]),
            (4, &OUTLIER),
        ],
    )
}

/// `|got − want| <= 1e-6 |want|` entrywise (plus 1e-12 so that exact zeros compare).
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= 1e-6 * w.abs() + 1e-12,
            "{what}[{j}]: got {g}, want {w} (error {err:e})"
        );
    }
}

/// The value of metric `name`.
#[track_caller]
pub fn metric(out: &AggregationOutput, name: &str) -> f64 {
    out.metrics
        .iter()
        .find(|m| m.name.as_str() == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", out.metrics))
        .value
}

/// Like [`make`], returning the constructor's error.
pub fn try_make(name: &str, params: &str) -> Result<Box<dyn AggregatorFunction>, PluginError> {
    let params = Params::parse(params)?;
    Ok(match name {
        "median" => Box::new(Median::from_params(&params)?),
        "trimmed-mean" => Box::new(TrimmedMean::from_params(&params)?),
        "krum" => Box::new(Krum::krum_from_params(&params)?),
        "multi-krum" => Box::new(Krum::multi_krum_from_params(&params)?),
        other => panic!("no component {other}"),
    })
}

/// The component `name` with JSON `params`.
pub fn make(name: &str, params: &str) -> Box<dyn AggregatorFunction> {
    try_make(name, params).unwrap_or_else(|e| panic!("{name} {params}: {e}"))
}

/// Every component with its default parameters.
pub const ALL: [&str; 4] = ["median", "trimmed-mean", "krum", "multi-krum"];

/// Asserts `result` failed with `kind` and a message containing every one of `needles`.
#[track_caller]
pub fn assert_error<T>(result: Result<T, PluginError>, kind: ErrorKind, needles: &[&str]) {
    match result {
        Ok(_) => panic!("expected a {kind:?} error mentioning {needles:?}, got Ok"),
        Err(e) => {
            assert_eq!(e.kind, kind, "{e}");
            for needle in needles {
                assert!(
                    e.message.contains(needle),
                    "{:?} does not mention {needle:?}",
                    e.message.as_str()
                );
            }
        }
    }
}

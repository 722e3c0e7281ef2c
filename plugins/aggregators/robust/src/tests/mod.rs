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

pub use fedpref_plugin_api::testing::{
    aggregation::{assert_close, Round},
    assert_error, metric,
};
use fedpref_plugin_api::{AggregatorFunction, Params, PluginError};

use crate::{Krum, Median, TrimmedMean};

pub const HONEST: [[f32; 4]; 4] = [
    [1.0, -2.0, 0.5, 3.0],
    [2.0, -1.0, 0.25, 2.0],
    [1.5, -3.0, 1.0, 2.5],
    [3.0, -1.5, 0.75, 1.0],
];
pub const OUTLIER: [f32; 4] = [1e30, -1e30, 1e30, 1e30];

/// The table above, as round 0 of a federation of five; every client holds one example.
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

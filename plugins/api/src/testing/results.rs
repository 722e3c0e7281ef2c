//! Reading what a component returned in tests: a named metric of any output, and the error of a
//! call, a constructor or an FFI call that must fail.

use std::fmt::Debug;

use crate::{
    AggregationOutput, ErrorKind, LossOutput, Metric, Params, PartitionOutput, PluginError,
    ScoreOutput,
};

/// An output that reports metrics: a loss's, an aggregation's or a partition's metrics, a
/// scorer's summary.
pub trait HasMetrics {
    /// The metrics, in the order the component reported them.
    fn metrics(&self) -> &[Metric];
}

impl HasMetrics for LossOutput {
    fn metrics(&self) -> &[Metric] {
        &self.metrics
    }
}

impl HasMetrics for AggregationOutput {
    fn metrics(&self) -> &[Metric] {
        &self.metrics
    }
}

impl HasMetrics for PartitionOutput {
    fn metrics(&self) -> &[Metric] {
        &self.metrics
    }
}

impl HasMetrics for ScoreOutput {
    fn metrics(&self) -> &[Metric] {
        &self.summary
    }
}

/// The value of metric `name` in `output`.
///
/// # Panics
/// When `output` has no metric `name`, listing the ones it has.
#[track_caller]
pub fn metric(output: &impl HasMetrics, name: &str) -> f64 {
    let metrics = output.metrics();
    metrics
        .iter()
        .find(|m| m.name.as_str() == name)
        .unwrap_or_else(|| panic!("no metric {name} in {metrics:?}"))
        .value
}

/// The error of `result`, a `Result` or an FFI `RResult` that must have failed.
///
/// # Panics
/// When `result` is a value.
#[track_caller]
pub fn error_of<T>(result: impl Into<Result<T, PluginError>>) -> PluginError {
    match result.into() {
        Ok(_) => panic!("expected an error, got a value"),
        Err(e) => e,
    }
}

/// Asserts `result` failed with `kind` and a message containing every one of `needles`.
///
/// # Panics
/// When `result` is a value, or its error has another kind or lacks a needle.
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

/// The error of `build` (a component's `from_params`) on the parameters `json`.
///
/// # Panics
/// When `json` is not a parameter object, or `build` accepts it.
#[track_caller]
pub fn params_error<T: Debug>(
    json: &str,
    build: impl FnOnce(&Params) -> Result<T, PluginError>,
) -> PluginError {
    let params = Params::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    match build(&params) {
        Ok(built) => panic!("expected {json} to be rejected, got {built:?}"),
        Err(e) => e,
    }
}

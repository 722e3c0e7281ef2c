//! The arithmetic the robust rules share: the per-coordinate sort behind the median and the
//! trimmed mean, the mean of a run of values and the rounding of the new global vector. (The
//! input checks and the metrics every rule reports are the API's
//! `AggregationInput::validate` and `AggregationInput::base_metrics`.)
//!
//! Arithmetic is in `f64` over the host's `f32` vectors; results are rounded once to `f32`.

use fedpref_plugin_api::ClientUpdate;

/// For every coordinate `j`, sorts `{y_i[j]}` over the clients ascending and applies `reduce`;
/// shape `(p,)`. Inputs are finite (`AggregationInput::validate`), so the order is total.
pub fn per_coordinate(
    p: usize,
    updates: &[ClientUpdate<'_>],
    reduce: impl Fn(&[f32]) -> f64,
) -> Vec<f64> {
    let mut column = vec![0f32; updates.len()];
    (0..p)
        .map(|j| {
            for (slot, update) in column.iter_mut().zip(updates) {
                *slot = update.params[j];
            }
            column.sort_unstable_by(f32::total_cmp);
            reduce(&column)
        })
        .collect()
}

/// The mean of `values` (non-empty) in `f64`.
pub fn mean(values: &[f32]) -> f64 {
    values.iter().map(|&x| f64::from(x)).sum::<f64>() / values.len() as f64
}

/// Rounds the new global vector to `f32` (an average or order statistic of finite `f32`
/// values, so it stays finite).
pub fn to_f32(values: Vec<f64>) -> Vec<f32> {
    values.into_iter().map(|x| x as f32).collect()
}

//! One round's input as every robust rule reads it: the per-coordinate sort behind the median and the trimmed mean, and the metrics all rules
//! report.
//!
//! Arithmetic is in `f64` over the host's `f32` vectors; results are rounded once to `f32`.

use fedpref_plugin_api::{ClientUpdate, Metric};

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

/// The metrics every rule reports: `clients` (updates received) and `update_norm`
/// (`‖w_{t+1} − w_t‖₂`).
pub fn base_metrics(global: &[f32], new_global: &[f32], clients: usize) -> Vec<Metric> {
    let update_norm = global
        .iter()
        .zip(new_global)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        .sqrt();
    vec![
        Metric::new("clients", clients as f64),
        Metric::new("update_norm", update_norm),
    ]
}

//! One round's input as every rule of this crate reads it: the checks shared by all rules, the
//! client weights `p_i`, the averaged client delta `Δ_t = Σ_i p_i (y_i − w_t)` and the checks on
//! the new global vector.
//!
//! Arithmetic is in `f64` over the host's `f32` vectors; results are rounded once to `f32`.

use fedpref_plugin_api::{ClientUpdate, PluginError};

use crate::options::Weighting;

/// The normalized client weights `p_i` (summing to 1) in update order.
///
/// # Errors
/// `InvalidInput` when weighting by examples and every update holds 0 examples.
pub fn weights(
    rule: &str,
    updates: &[ClientUpdate<'_>],
    weighting: Weighting,
) -> Result<Vec<f64>, PluginError> {
    match weighting {
        Weighting::Uniform => Ok(vec![1.0 / updates.len() as f64; updates.len()]),
        Weighting::Examples => {
            // Exact in f64 below 2^53 examples in total.
            let total: f64 = updates.iter().map(|u| u.n_examples as f64).sum();
            if total <= 0.0 {
                return Err(PluginError::invalid_input(format!(
                    "{rule}: every client update holds 0 examples, so they cannot be weighted by example count"
                )));
            }
            Ok(updates
                .iter()
                .map(|u| u.n_examples as f64 / total)
                .collect())
        }
    }
}

/// `Δ_t[j] = Σ_i p_i (y_i[j] − w_t[j])`, shape `(p,)`.
pub fn mean_delta(global: &[f32], updates: &[ClientUpdate<'_>], p: &[f64]) -> Vec<f64> {
    let mut delta = vec![0f64; global.len()];
    for (update, &weight) in updates.iter().zip(p) {
        for ((d, &y), &w) in delta.iter_mut().zip(update.params.iter()).zip(global) {
            *d += weight * (f64::from(y) - f64::from(w));
        }
    }
    delta
}

/// Rounds the new global vector to `f32` and checks it stayed finite.
///
/// # Errors
/// `Failed` naming the first entry that overflowed `f32`.
pub fn finish_global(
    rule: &str,
    new_global: impl Iterator<Item = f64>,
) -> Result<Vec<f32>, PluginError> {
    let out: Vec<f32> = new_global.map(|x| x as f32).collect();
    finite(rule, "new global parameter", &out)?;
    Ok(out)
}

/// Checks that a vector (new parameters or state) holds only finite values.
///
/// # Errors
/// `Failed` naming `what` and the first bad entry.
pub fn finite(rule: &str, what: &str, values: &[f32]) -> Result<(), PluginError> {
    match values.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(j) => Err(PluginError::failed(format!(
            "{rule}: {what} {j} is {} (the update overflowed f32; lower the server learning rate)",
            values[j]
        ))),
    }
}

/// The Euclidean norm of a vector.
pub fn norm(a: &[f32]) -> f64 {
    a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

/// Checks that a state vector allocated in an earlier round matches this round's size.
///
/// # Errors
/// `InvalidInput` naming the rule and both sizes.
pub fn check_state_len(rule: &str, what: &str, state: &[f32], p: usize) -> Result<(), PluginError> {
    if state.is_empty() || state.len() == p {
        Ok(())
    } else {
        Err(PluginError::invalid_input(format!(
            "{rule}: the {what} holds {} parameters but the global model has {p}",
            state.len()
        )))
    }
}

//! Helpers for plugin authors' tests: a central finite-difference check of a loss's gradient.

use crate::{LossBatch, LossFunction, PluginError};

/// Finite-difference derivative of `loss` with respect to each entry of `logp_policy`
/// (and of `kl_logp_policy`), by central differences with step `h`, evaluated in the loss's own
/// arithmetic. Returns `(d/d logp_policy, d/d kl_logp_policy)`.
///
/// # Errors
/// Any error of `loss.evaluate`.
pub fn finite_difference(
    loss: &dyn LossFunction,
    batch: &LossBatch<'_>,
    h: f32,
) -> Result<(Vec<f64>, Vec<f64>), PluginError> {
    let eval = |policy: &[f32], kl: &[f32]| -> Result<f64, PluginError> {
        let b = LossBatch {
            logp_policy: policy.into(),
            kl_logp_policy: kl.into(),
            ..*batch
        };
        Ok(loss.evaluate(&b)?.loss)
    };
    let mut policy = batch.logp_policy.to_vec();
    let mut kl = batch.kl_logp_policy.to_vec();
    let mut grad_policy = Vec::with_capacity(policy.len());
    for i in 0..policy.len() {
        let x = policy[i];
        policy[i] = x + h;
        let up = eval(&policy, &kl)?;
        policy[i] = x - h;
        let down = eval(&policy, &kl)?;
        policy[i] = x;
        grad_policy.push((up - down) / (2.0 * f64::from(h)));
    }
    let mut grad_kl = Vec::with_capacity(kl.len());
    for j in 0..kl.len() {
        let x = kl[j];
        kl[j] = x + h;
        let up = eval(&policy, &kl)?;
        kl[j] = x - h;
        let down = eval(&policy, &kl)?;
        kl[j] = x;
        grad_kl.push((up - down) / (2.0 * f64::from(h)));
    }
    Ok((grad_policy, grad_kl))
}

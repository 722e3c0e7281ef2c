//! A loss's gradient against central finite differences: [`finite_difference`] computes them,
//! [`GradientCheck`] compares them with the loss's own `grad_logp_policy`.

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
    let grad_policy = central_differences(&mut policy, h, |p| eval(p, &kl))?;
    let grad_kl = central_differences(&mut kl, h, |k| eval(&policy, k))?;
    Ok((grad_policy, grad_kl))
}

/// `(f(x + h e_i) − f(x − h e_i)) / 2h` for every entry `i` of `x`, which is restored after.
fn central_differences(
    x: &mut [f32],
    h: f32,
    f: impl Fn(&[f32]) -> Result<f64, PluginError>,
) -> Result<Vec<f64>, PluginError> {
    let mut grad = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let original = x[i];
        x[i] = original + h;
        let up = f(x)?;
        x[i] = original - h;
        let down = f(x)?;
        x[i] = original;
        grad.push((up - down) / (2.0 * f64::from(h)));
    }
    Ok(grad)
}

/// How closely a loss's analytic gradient must follow [`finite_difference`]: entry `i` passes
/// when `|analytic − numeric| <= rel · max(|analytic|, |numeric|) + abs`.
///
/// Use log-probs of realistic size (−5 to −50) whose values have few fractional bits, and a
/// step around `1/64`: inputs are `f32`, so a much smaller step loses precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradientCheck {
    /// The central-difference step `h`, in nats.
    pub step: f32,
    /// The relative tolerance.
    pub rel: f64,
    /// The absolute tolerance, for entries near zero.
    pub abs: f64,
}

impl Default for GradientCheck {
    /// A step of `1/64`, exact in `f32` for log-probs with few fractional bits, and tolerances
    /// of `1e-3` relative and `1e-7` absolute.
    fn default() -> Self {
        Self {
            step: 1.0 / 64.0,
            rel: 1e-3,
            abs: 1e-7,
        }
    }
}

impl GradientCheck {
    /// Asserts that `loss`'s `grad_logp_policy` on `batch` matches the finite differences
    /// entry by entry; `what` names the case in a failure. Returns the finite differences with
    /// respect to the KL batch, for a loss that detaches (or differentiates) it.
    ///
    /// # Panics
    /// When `loss` fails on `batch` or an entry is off by more than the tolerance.
    #[track_caller]
    pub fn assert_matches(
        &self,
        loss: &dyn LossFunction,
        batch: &LossBatch<'_>,
        what: &str,
    ) -> Vec<f64> {
        let out = loss
            .evaluate(batch)
            .unwrap_or_else(|e| panic!("{what}: the loss failed: {e}"));
        let (numeric, numeric_kl) = finite_difference(loss, batch, self.step)
            .unwrap_or_else(|e| panic!("{what}: a finite-difference step failed: {e}"));
        for (i, (&got, &numeric)) in out.grad_logp_policy.iter().zip(&numeric).enumerate() {
            let tol = self.rel * numeric.abs().max(f64::from(got).abs()) + self.abs;
            assert!(
                (f64::from(got) - numeric).abs() <= tol,
                "{what} grad[{i}]: analytic {got}, finite difference {numeric}"
            );
        }
        numeric_kl
    }
}

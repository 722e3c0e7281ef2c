//! Gamma and Dirichlet draws for the `dirichlet` rule, in log space.
//!
//! The gamma draws are `rand_distr`'s (Marsaglia and Tsang 2000). For a shape `a < 1` it
//! returns `Gamma(a + 1) · U^(1/a)`, and small concentrations (`alpha = 0.01`) make `U^(1/a)`
//! underflow to 0, so that every share of a Dirichlet draw could be 0. [`LogGamma`] therefore
//! draws `Gamma(a + 1)` from `rand_distr` and adds `ln U / a` itself, and [`dirichlet`]
//! normalises the logarithms with a log-sum-exp.

use rand::Rng;
use rand_distr::{Distribution, Gamma, GammaError, Open01};

/// `ln X` for `X ~ Gamma(shape, 1)`, finite for every shape down to `1e-4` and below.
#[derive(Debug, Clone, Copy)]
pub struct LogGamma {
    shape: f64,
    /// `Gamma(shape, 1)` for `shape >= 1`, else `Gamma(shape + 1, 1)`.
    gamma: Gamma<f64>,
}

impl LogGamma {
    /// The distribution of `ln X`, `X ~ Gamma(shape, 1)`.
    ///
    /// # Errors
    /// `rand_distr`'s error for a shape that is not finite and positive.
    pub fn new(shape: f64) -> Result<Self, GammaError> {
        let boosted = if shape < 1.0 { shape + 1.0 } else { shape };
        Ok(Self {
            shape,
            gamma: Gamma::new(boosted, 1.0)?,
        })
    }
}

impl Distribution<f64> for LogGamma {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let ln_x = self.gamma.sample(rng).ln();
        if self.shape < 1.0 {
            // Gamma(a) = Gamma(a + 1) · U^(1/a); U in (0, 1), so ln U is finite.
            let u: f64 = rng.sample(Open01);
            ln_x + u.ln() / self.shape
        } else {
            ln_x
        }
    }
}

/// A draw from the symmetric Dirichlet distribution `Dir(alpha, ..., alpha)` over `k` outcomes,
/// given `ln_gamma` = [`LogGamma`] of shape `alpha`.
pub fn dirichlet(ln_gamma: &LogGamma, k: usize, rng: &mut impl Rng) -> Vec<f64> {
    let logs: Vec<f64> = (0..k).map(|_| ln_gamma.sample(rng)).collect();
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = logs.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_mean_and_variance_match_the_shape() {
        let mut rng = crate::common::rng(7);
        for shape in [0.1, 0.5, 1.0, 2.5, 10.0] {
            let ln_gamma = LogGamma::new(shape).unwrap();
            let n = 40_000;
            let xs: Vec<f64> = (0..n).map(|_| ln_gamma.sample(&mut rng).exp()).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            // Mean and variance of Gamma(a, 1) are both a; the standard error of the mean is
            // sqrt(a / n) <= 0.016, so 5% (+0.01) is over 3 standard errors.
            assert!(
                (mean - shape).abs() < 0.05 * shape + 0.01,
                "shape {shape}: mean {mean}"
            );
            assert!(
                (var - shape).abs() < 0.15 * shape + 0.01,
                "shape {shape}: variance {var}"
            );
        }
    }

    #[test]
    fn dirichlet_sums_to_one_even_for_tiny_alpha() {
        let mut rng = crate::common::rng(1);
        for alpha in [1e-3, 0.1, 1.0, 100.0] {
            let p = dirichlet(&LogGamma::new(alpha).unwrap(), 12, &mut rng);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert!(p.iter().all(|x| x.is_finite() && *x >= 0.0));
        }
    }
}

//! Gamma and Dirichlet draws for the `dirichlet` rule, in log space.
//!
//! Marsaglia and Tsang (2000), "A simple method for generating gamma variables": for shape
//! `a >= 1`, `d = a - 1/3`, `c = 1 / sqrt(9 d)`, accept `d v` with `v = (1 + c x)^3`, `x ~ N(0, 1)`;
//! for `a < 1`, `Gamma(a) = Gamma(a + 1) * U^(1/a)`. Small concentrations (`alpha = 0.01`) make
//! `U^(1/a)` underflow, so draws are returned as logarithms and normalised with a log-sum-exp.

use rand::Rng;

/// One standard normal draw (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - U lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `ln X` for `X ~ Gamma(shape, 1)`, `shape > 0`.
pub fn ln_gamma_draw(shape: f64, rng: &mut impl Rng) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.random::<f64>();
        return ln_gamma_draw(shape + 1.0, rng) + u.ln() / shape;
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - rng.random::<f64>();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return (d * v).ln();
        }
    }
}

/// A draw from the symmetric Dirichlet distribution `Dir(alpha, ..., alpha)` over `k` outcomes.
pub fn dirichlet(alpha: f64, k: usize, rng: &mut impl Rng) -> Vec<f64> {
    let logs: Vec<f64> = (0..k).map(|_| ln_gamma_draw(alpha, rng)).collect();
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
            let n = 40_000;
            let xs: Vec<f64> = (0..n)
                .map(|_| ln_gamma_draw(shape, &mut rng).exp())
                .collect();
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
            let p = dirichlet(alpha, 12, &mut rng);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert!(p.iter().all(|x| x.is_finite() && *x >= 0.0));
        }
    }
}

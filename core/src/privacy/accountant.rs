//! Rényi-DP accounting of the Poisson-subsampled Gaussian mechanism, composed over steps, and
//! its conversion to (ε, δ).
//!
//! One step samples each member (a client, or an example) with probability `q`, sums their
//! contributions clipped to norm C and adds Gaussian noise of standard deviation σ·C. Its RDP at
//! order α is `log A_α / (α − 1)` (Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy
//! of the Sampled Gaussian Mechanism", Section 3.3), with
//! `A_α = Σ_k C(α, k) (1 − q)^(α − k) q^k exp((k² − k) / 2σ²)` for integer α, and a two-sided
//! series with complementary error functions for fractional α. RDP composes by addition over
//! steps; ε at δ is the minimum over orders of `rdp + ln(1 − 1/α) − ln(δ α) / (α − 1)`
//! (Balle et al. 2020, Proposition 12; Canonne et al. 2020, Eq. 20).
//!
//! The orders and the numerical choices are those of Google's `dp-accounting` 0.6.0, against
//! which (and against Opacus 1.6.0) the tests check ε to 1 % over a committed grid.

/// dp-accounting's default orders: 1.1 to 10.9 by 0.1, 11 to 63, then 128 to 1024.
pub fn default_orders() -> Vec<f64> {
    let mut orders: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    orders.extend((11..64).map(f64::from));
    orders.extend([128.0, 256.0, 512.0, 1024.0]);
    orders
}

/// The most terms summed for a fractional order; an order whose series has not converged by
/// then is left out (as dp-accounting does), which can only raise ε.
const MAX_TERMS: usize = 1_000_000;

/// Accumulated RDP of a sequence of subsampled Gaussian steps.
#[derive(Debug, Clone, PartialEq)]
pub struct RdpAccountant {
    orders: Vec<f64>,
    /// RDP at each order; NaN marks an order left out.
    rdp: Vec<f64>,
}

impl Default for RdpAccountant {
    fn default() -> Self {
        Self::new(default_orders())
    }
}

impl RdpAccountant {
    /// An accountant at `orders` (each above 1) with nothing spent.
    pub fn new(orders: Vec<f64>) -> Self {
        let rdp = vec![0.0; orders.len()];
        Self { orders, rdp }
    }

    /// Adds `steps` steps of the Gaussian mechanism with noise multiplier `sigma`, each on a
    /// Poisson sample of rate `q`.
    pub fn compose_poisson_gaussian(&mut self, q: f64, sigma: f64, steps: u64) {
        for (rdp, &alpha) in self.rdp.iter_mut().zip(&self.orders) {
            *rdp += steps as f64 * poisson_gaussian_rdp(q, sigma, alpha);
        }
    }

    /// Adds `steps` steps of the Gaussian mechanism with noise multiplier `sigma` (over the
    /// replace-one sensitivity), each on a sample of fixed size `q·n` drawn without replacement
    /// from `n` members.
    pub fn compose_fixed_size_gaussian(&mut self, q: f64, sigma: f64, steps: u64) {
        for (rdp, &alpha) in self.rdp.iter_mut().zip(&self.orders) {
            *rdp += steps as f64 * fixed_size_gaussian_rdp(q, sigma, alpha);
        }
    }

    /// The smallest ε, over the orders, for which the steps so far are (ε, δ)-DP, and the order
    /// that gives it.
    pub fn epsilon(&self, delta: f64) -> (f64, f64) {
        let mut best = (f64::INFINITY, 0.0);
        for (&rdp, &alpha) in self.rdp.iter().zip(&self.orders) {
            let eps = epsilon_at(alpha, rdp, delta);
            if eps < best.0 {
                best = (eps, alpha);
            }
        }
        (best.0.max(0.0), best.1)
    }
}

/// ε at `delta` after `steps` Poisson-subsampled Gaussian steps of rate `q` and noise
/// multiplier `sigma`.
pub fn poisson_gaussian_epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> f64 {
    let mut accountant = RdpAccountant::default();
    accountant.compose_poisson_gaussian(q, sigma, steps);
    accountant.epsilon(delta).0
}

/// ε at one order (infinite for an order left out, or where the bound does not apply).
fn epsilon_at(alpha: f64, rdp: f64, delta: f64) -> f64 {
    if rdp.is_nan() || delta <= 0.0 {
        return f64::INFINITY;
    }
    if rdp < 0.0 || delta * delta + (-rdp).exp_m1() > 0.0 {
        // δ ≥ sqrt(1 − exp(−KL)): the pair is (0, δ)-indistinguishable.
        return 0.0;
    }
    if alpha <= 1.01 {
        // The bound is unstable as α -> 1 and never the best there.
        return f64::INFINITY;
    }
    rdp + (-1.0 / alpha).ln_1p() - (delta * alpha).ln() / (alpha - 1.0)
}

/// RDP at order `alpha` of one Poisson-subsampled Gaussian step; NaN when the fractional
/// series does not converge.
pub fn poisson_gaussian_rdp(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let log_a = if alpha.fract() == 0.0 {
        log_a_integer(q, sigma, alpha as u64)
    } else {
        log_a_fractional(q, sigma, alpha)
    };
    log_a / (alpha - 1.0)
}

/// `log A_α` for integer α: a finite sum of positive terms.
fn log_a_integer(q: f64, sigma: f64, alpha: u64) -> f64 {
    let (log_q, log_1q) = (q.ln(), (-q).ln_1p());
    let mut log_a = f64::NEG_INFINITY;
    for k in 0..=alpha {
        let kf = k as f64;
        let term = log_binomial(alpha as f64, kf)
            + kf * log_q
            + (alpha - k) as f64 * log_1q
            + (kf * kf - kf) / (2.0 * sigma * sigma);
        log_a = log_add(log_a, term);
    }
    log_a
}

/// `log A_α` for fractional α: two series over the Gaussian's halves split at `z0`, whose
/// generalized binomial coefficients alternate in sign past α.
fn log_a_fractional(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (log_q, log_1q) = (q.ln(), (-q).ln_1p());
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    // C(α, i) by the recurrence C(α, i + 1) = C(α, i) (α − i) / (i + 1), as log |C| and sign.
    let (mut log_coef, mut positive) = (0.0f64, true);
    for i in 0..MAX_TERMS {
        let fi = i as f64;
        let j = alpha - fi;
        let log_t0 = log_coef + fi * log_q + j * log_1q;
        let log_t1 = log_coef + j * log_q + fi * log_1q;
        let scale = std::f64::consts::SQRT_2 * sigma;
        let log_e0 = 0.5f64.ln() + log_erfc((fi - z0) / scale);
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / scale);
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        if positive {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0);
            log_a1 = log_sub(log_a1, log_s1);
        }
        if log_s0.max(log_s1) < -30.0 {
            return log_add(log_a0, log_a1);
        }
        let ratio = (alpha - fi) / (fi + 1.0);
        log_coef += ratio.abs().ln();
        positive = positive == (ratio > 0.0);
    }
    f64::NAN
}

/// RDP at order `alpha` of one Gaussian step on a sample of fixed size drawn without
/// replacement, at rate `q = m / n`, under replace-one neighbours: the bound of Wang, Balle and
/// Kasiviswanathan 2019 ("Subsampled Rényi Differential Privacy and Analytical Moments
/// Accountant", Theorem 27) at integer orders, interpolated linearly in the cumulant generating
/// function between them (their Corollary 10), as dp-accounting computes it.
pub fn fixed_size_gaussian_rdp(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let (low, high) = (alpha.floor(), alpha.ceil());
    if low == high {
        return log_a_without_replacement(q, sigma, low as u64) / (alpha - 1.0);
    }
    let t = alpha - low;
    let below = log_a_without_replacement(q, sigma, low as u64);
    let above = log_a_without_replacement(q, sigma, high as u64);
    ((1.0 - t) * below + t * above) / (alpha - 1.0)
}

/// `(α − 1) · RDP` of the without-replacement bound at integer `alpha`: `ln(1 + Σ_{i≥2} …)`,
/// each term the smaller of the bound through forward differences of `exp(cgf)` and the plain
/// one; past order 256 only the plain one (O(α) instead of O(α²)).
fn log_a_without_replacement(q: f64, sigma: f64, alpha: u64) -> f64 {
    if alpha <= 1 {
        return 0.0;
    }
    let two_var = 2.0 * sigma * sigma;
    // The Gaussian's RDP at order x and its cumulant generating function x·RDP(x + 1).
    let rdp = |x: f64| x / two_var;
    let cgf = |x: f64| x * (x + 1.0) / two_var;
    let (ln2, ln4, log_q) = (2f64.ln(), 4f64.ln(), q.ln());
    let log_f2m1 = rdp(2.0) + (-(-rdp(2.0)).exp()).ln_1p();
    let deltas = (alpha <= 256).then(|| forward_differences(cgf, alpha as usize));
    let mut log_a = 0.0;
    for i in 2..=alpha {
        let fi = i as f64;
        let bound = if i == 2 {
            (ln4 + log_f2m1).min(rdp(2.0) + ln2)
        } else {
            let plain = ln2 + cgf(fi - 1.0);
            match &deltas {
                Some(deltas) => {
                    let lo = deltas[(2 * (i / 2) - 1) as usize];
                    let hi = deltas[(2 * i.div_ceil(2) - 1) as usize];
                    (ln4 + 0.5 * (lo + hi)).min(plain)
                }
                None => plain,
            }
        };
        log_a = log_add(log_a, bound + fi * log_q + log_binomial(alpha as f64, fi));
    }
    log_a
}

/// `ln |Δ^k exp(f)(−1)|` for k = 1 … n + 2, the forward differences of `exp(f)` on the points
/// −1, 0, 1, …, with `exp(f(−1))` taken as 1, computed in log space with signs.
fn forward_differences(f: impl Fn(f64) -> f64, n: usize) -> Vec<f64> {
    let mut values = vec![0.0; n + 3];
    let mut positive = vec![true; n + 3];
    for (i, value) in values.iter_mut().enumerate().skip(1) {
        *value = f((i - 1) as f64);
    }
    let mut deltas = vec![0.0; n + 2];
    for (i, delta) in deltas.iter_mut().enumerate() {
        for j in 0..n + 2 - i {
            if positive[j] == positive[j + 1] {
                let (sign, magnitude) = log_sub_signed(values[j + 1], values[j]);
                values[j] = magnitude;
                positive[j] = if positive[j + 1] { sign } else { !sign };
            } else {
                values[j] = log_add(values[j], values[j + 1]);
                positive[j] = positive[j + 1];
            }
        }
        *delta = values[0];
    }
    deltas
}

/// `ln |e^a − e^b|` and whether `e^a − e^b` is positive.
fn log_sub_signed(a: f64, b: f64) -> (bool, f64) {
    if a > b {
        (true, a + (-(b - a).exp()).ln_1p())
    } else if a < b {
        (false, b + (-(a - b).exp()).ln_1p())
    } else {
        (true, f64::NEG_INFINITY)
    }
}

/// `ln C(n, k)` for real n ≥ k ≥ 0.
fn log_binomial(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// `ln(e^a + e^b)`.
fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// `ln(e^a − e^b)` for a ≥ b; −∞ when they are equal or b is larger (a difference that
/// rounds below zero).
fn log_sub(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    if a <= b {
        return f64::NEG_INFINITY;
    }
    a + (-(b - a).exp()).ln_1p()
}

/// `ln erfc(x)`, accurate where erfc underflows (x > 26): there by its asymptotic series.
fn log_erfc(x: f64) -> f64 {
    if x < 25.0 {
        return libm::erfc(x).ln();
    }
    // erfc(x) = exp(−x²) / (x √π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + …)
    let inv = 1.0 / (2.0 * x * x);
    let series = 1.0 - inv + 3.0 * inv * inv - 15.0 * inv * inv * inv;
    -x * x - x.ln() - 0.5 * std::f64::consts::PI.ln() + series.ln()
}

#[cfg(test)]
#[path = "accountant_tests.rs"]
mod tests;

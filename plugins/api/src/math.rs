//! Numerically stable scalar functions in `f64` for loss formulas.
//!
//! Preference losses are built from `log σ(x)` and `σ(x)` of a scaled log-ratio that can reach
//! |x| ≈ 1e4 when the policy drifts far from the reference; the naive `ln(1 / (1 + e^-x))`
//! overflows there, so these forms never exponentiate a positive number.

/// `softplus(x) = ln(1 + e^x)`, stable for every finite `x` (it tends to `x` for large `x` and
/// to `e^x` for very negative `x`).
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// `log σ(x) = -softplus(-x)`, as PyTorch's `F.logsigmoid`.
pub fn log_sigmoid(x: f64) -> f64 {
    -softplus(-x)
}

/// The logistic function `σ(x) = 1 / (1 + e^-x)`, without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The mean of `values`, or NaN ("not defined") when there are none.
pub fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

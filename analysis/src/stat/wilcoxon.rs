//! The Wilcoxon signed-rank test of paired differences, two-sided, with the matched-pairs
//! rank-biserial correlation as its effect size.
//!
//! Zero differences are dropped (Wilcoxon's original treatment, SciPy's `zero_method="wilcox"`)
//! and tied absolute differences share their average rank. With `n` differences left:
//!
//! - `n <= 50` ([`EXACT_UP_TO`]): the exact null distribution of `W+`, the sum of the positive
//!   ranks, over all `2^n` sign patterns of the (average) ranks, computed by dynamic programming
//!   on doubled ranks. Without ties this is the classical exact table; with ties it is the exact
//!   permutation distribution given the tie pattern (what SciPy's permutation method computes;
//!   its default `method="auto"` uses it only up to 13). `p = min(1, 2 P(W+ <= min(W+, W-)))`;
//! - `n > 50`: the normal approximation with mean `n(n+1)/4`, variance
//!   `n(n+1)(2n+1)/24 - sum(t^3 - t)/48` over tie groups of size `t`, and a continuity
//!   correction of 1/2 towards the mean (SciPy's `method="asymptotic", correction=True`).
//!
//! Effect size: `r = (W+ - W-) / (W+ + W-)`, from -1 (every difference negative) to 1 (every
//! difference positive), 0 without non-zero differences.

use super::normal;

/// Largest count of non-zero differences tested with the exact distribution.
pub const EXACT_UP_TO: usize = 50;

/// Differences closer than this (relative to their size, or absolutely near zero) count as
/// equal: averaging over seeds leaves rounding noise where the scores tie.
const TOLERANCE: f64 = 1e-12;

/// How the p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The exact (permutation) distribution of `W+`.
    Exact,
    /// The normal approximation with tie and continuity correction.
    Normal,
}

/// The outcome of a signed-rank test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wilcoxon {
    /// Non-zero differences ranked.
    pub n: usize,
    /// Zero differences dropped.
    pub zeros: usize,
    /// Whether some absolute differences tie.
    pub ties: bool,
    /// Sum of the ranks of positive differences.
    pub w_plus: f64,
    /// Sum of the ranks of negative differences.
    pub w_minus: f64,
    /// The standardized statistic (with continuity correction), for the normal approximation.
    pub z: Option<f64>,
    /// Two-sided p-value; 1 without non-zero differences.
    pub p_value: f64,
    /// How `p_value` was computed.
    pub method: Method,
    /// Matched-pairs rank-biserial correlation `(W+ - W-) / (W+ + W-)`.
    pub rank_biserial: f64,
}

/// Tests whether `differences` are centred on zero (non-finite values are left out).
///
/// ```
/// use fedpref_analysis::stat::wilcoxon;
/// // Ranks 1..5, the one negative difference has rank 1: W+ = 14, W- = 1.
/// let test = wilcoxon(&[-0.5, 1.0, 2.0, 3.0, 4.0]);
/// assert_eq!((test.w_plus, test.w_minus), (14.0, 1.0));
/// // Exact: 2 P(W+ <= 1) = 2 * 2 / 32.
/// assert_eq!(test.p_value, 0.125);
/// ```
pub fn wilcoxon(differences: &[f64]) -> Wilcoxon {
    let finite: Vec<f64> = differences
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .collect();
    let nonzero: Vec<f64> = finite
        .iter()
        .copied()
        .filter(|d| d.abs() > TOLERANCE)
        .collect();
    let n = nonzero.len();
    let (doubled, tie_sizes) = doubled_ranks(&nonzero);
    let doubled_plus: u64 = nonzero
        .iter()
        .zip(&doubled)
        .filter(|(d, _)| **d > 0.0)
        .map(|(_, r)| *r)
        .sum();
    let total = (n * (n + 1)) as u64;
    let (w_plus, w_minus) = (
        doubled_plus as f64 / 2.0,
        (total - doubled_plus) as f64 / 2.0,
    );
    let (p_value, method, z) = if n == 0 {
        (1.0, Method::Exact, None)
    } else if n <= EXACT_UP_TO {
        let smaller = doubled_plus.min(total - doubled_plus);
        (exact_p(&doubled, smaller), Method::Exact, None)
    } else {
        let z = normal_z(n, w_plus, &tie_sizes);
        (normal::two_sided_p(z), Method::Normal, Some(z))
    };
    Wilcoxon {
        n,
        zeros: finite.len() - n,
        ties: tie_sizes.iter().any(|t| *t > 1),
        w_plus,
        w_minus,
        z,
        p_value,
        method,
        rank_biserial: if n == 0 {
            0.0
        } else {
            (w_plus - w_minus) / (w_plus + w_minus)
        },
    }
}

/// Twice the average rank of each `|value|` (an integer: ranks `i+1..=j` average to
/// `(i+1+j)/2`), in input order, and the sizes of the tie groups.
fn doubled_ranks(values: &[f64]) -> (Vec<u64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()));
    let mut doubled = vec![0; values.len()];
    let mut groups = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let first = values[order[start]].abs();
        let mut end = start + 1;
        while end < order.len() && values[order[end]].abs() - first <= TOLERANCE * first.max(1.0) {
            end += 1;
        }
        for &index in &order[start..end] {
            doubled[index] = (start + 1 + end) as u64;
        }
        groups.push(end - start);
        start = end;
    }
    (doubled, groups)
}

/// `min(1, 2 P(2 W+ <= smaller))` under the null: every doubled rank is positive or negative
/// with probability 1/2, independently.
fn exact_p(doubled: &[u64], smaller: u64) -> f64 {
    let total: u64 = doubled.iter().sum();
    let mut probability = vec![0.0; total as usize + 1];
    probability[0] = 1.0;
    let mut reach = 0usize;
    for &rank in doubled {
        let rank = rank as usize;
        reach += rank;
        // Descending, so that each rank is added at most once.
        for sum in (0..=reach).rev() {
            let with = if sum >= rank {
                probability[sum - rank]
            } else {
                0.0
            };
            probability[sum] = 0.5 * (probability[sum] + with);
        }
    }
    let lower: f64 = probability[..=smaller as usize].iter().sum();
    (2.0 * lower).min(1.0)
}

/// The normal approximation's statistic with tie and continuity correction.
fn normal_z(n: usize, w_plus: f64, tie_sizes: &[usize]) -> f64 {
    let n = n as f64;
    let mean = n * (n + 1.0) / 4.0;
    let ties: f64 = tie_sizes
        .iter()
        .map(|&t| (t as f64).powi(3) - t as f64)
        .sum();
    let sd = (n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - ties / 48.0).sqrt();
    let centred = w_plus - mean;
    (centred - 0.5 * centred.signum()) / sd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, relative: f64) -> bool {
        (a - b).abs() <= relative * b.abs()
    }

    #[test]
    fn exact_without_ties_by_hand() {
        // |d| ordered: 0.5-, 0.8+, 1.2+, 1.5+, 2.0+, 2.5-, 3.5+, 4.0+ -> ranks 1..8, negatives
        // at ranks 1 and 6: W- = 7, W+ = 36 - 7 = 29. Subsets of {1..8} with sum <= 7:
        // 1 + 1 + 1 + 2 + 2 + 3 + 4 + 5 = 19 (sums 0..7), so p = 2 * 19 / 256 = 0.1484375
        // (SciPy 1.17.1, wilcoxon(d): statistic 7.0, pvalue 0.1484375).
        let d = [1.5, -0.5, 2.0, 3.5, -2.5, 4.0, 0.8, 1.2];
        let test = wilcoxon(&d);
        assert_eq!((test.n, test.zeros, test.ties), (8, 0, false));
        assert_eq!((test.w_plus, test.w_minus), (29.0, 7.0));
        assert_eq!(test.method, Method::Exact);
        assert_eq!(test.p_value, 0.148_437_5);
        assert!(close(test.rank_biserial, 22.0 / 36.0, 1e-15));
        // The sign of every difference flipped: the same p, the opposite effect.
        let flipped: Vec<f64> = d.iter().map(|x| -x).collect();
        let mirror = wilcoxon(&flipped);
        assert_eq!(mirror.p_value, test.p_value);
        assert!(close(mirror.rank_biserial, -22.0 / 36.0, 1e-15));
    }

    #[test]
    fn zeros_are_dropped_and_all_positive_is_the_smallest_p() {
        // Five positive differences and two zeros: n = 5, W- = 0, p = 2 / 32.
        let test = wilcoxon(&[0.0, 3.0, 1.0, 0.0, 4.0, 2.0, 5.0]);
        assert_eq!((test.n, test.zeros), (5, 2));
        assert_eq!(
            (test.w_plus, test.w_minus, test.p_value),
            (15.0, 0.0, 0.0625)
        );
        assert_eq!(test.rank_biserial, 1.0);
    }

    #[test]
    fn all_ties_reduce_to_the_sign_test() {
        // Eight differences of size 1 share rank 4.5, so W+ = 4.5 k with k ~ Binomial(8, 1/2):
        // the exact test is the two-sided sign test, P(k <= 1) = 9/256, p = 18/256
        // (scipy.stats.binomtest(7, 8).pvalue = 0.0703125).
        let test = wilcoxon(&[1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert!(test.ties);
        assert_eq!((test.w_plus, test.w_minus), (31.5, 4.5));
        assert_eq!(test.p_value, 0.070_312_5);
        assert_eq!(test.rank_biserial, 0.75);
    }

    #[test]
    fn exact_with_ties_matches_scipys_permutation_test() {
        // SciPy 1.17.1: wilcoxon([2, -1, 1, 3, 2, 2, -3, 1, 4, 0]) takes its permutation
        // method (ties and a zero, n <= 13): statistic 9.5, pvalue 0.1484375.
        let test = wilcoxon(&[2.0, -1.0, 1.0, 3.0, 2.0, 2.0, -3.0, 1.0, 4.0, 0.0]);
        assert_eq!((test.n, test.zeros), (9, 1));
        // Ranks: 1,1,1 -> 2; 2,2,2 -> 5; 3,3 -> 7.5; 4 -> 9. W- = 2 + 7.5.
        assert_eq!(test.w_minus, 9.5);
        assert!(close(test.p_value, 0.148_437_5, 1e-12), "{}", test.p_value);
    }

    #[test]
    fn normal_approximation_matches_scipy() {
        // d_i = (7 i mod 11) - 4 for i in 0..60: zeros and many ties. SciPy 1.17.1:
        // wilcoxon(d, method="asymptotic", correction=True) gives statistic 495.0,
        // pvalue 0.020921122942308305, and with method="auto" the same (ties, n > 13).
        let d: Vec<f64> = (0..60).map(|i| f64::from((7 * i) % 11) - 4.0).collect();
        let test = wilcoxon(&d);
        assert_eq!((test.n, test.zeros), (55, 5));
        assert_eq!(test.method, Method::Normal);
        assert_eq!(test.w_plus.min(test.w_minus), 495.0);
        assert!(
            close(test.p_value, 0.020_921_122_942_308_305, 1e-10),
            "{}",
            test.p_value
        );
    }

    #[test]
    fn exact_p_for_n_at_the_limit_matches_scipy() {
        // d_i = (i + 1) * (-1)^(i mod 3 == 0), i in 0..50: no ties, exact. SciPy 1.17.1:
        // wilcoxon(d, method="exact"): statistic 425.0, pvalue 0.03996834652842374.
        let d: Vec<f64> = (0..50)
            .map(|i| f64::from(i + 1) * if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let test = wilcoxon(&d);
        assert_eq!(test.method, Method::Exact);
        assert_eq!(test.w_minus, 425.0);
        assert!(
            close(test.p_value, 0.039_968_346_528_423_74, 1e-12),
            "{}",
            test.p_value
        );
    }

    #[test]
    fn nothing_to_rank() {
        for d in [&[][..], &[0.0, 0.0][..], &[f64::NAN][..]] {
            let test = wilcoxon(d);
            assert_eq!((test.n, test.p_value, test.rank_biserial), (0, 1.0, 0.0));
        }
        let one = wilcoxon(&[2.0]);
        assert_eq!((one.n, one.p_value), (1, 1.0), "2 * P(W+ <= 0) = 1");
    }
}

//! The percentile bootstrap interval of a mean over clustered values (questions within seeds).
//!
//! One resample, for values in `k` clusters (seeds):
//!
//! - `k = 1`: draw the cluster's `n` values with replacement; the statistic is their mean;
//! - `k > 1`: draw `k` clusters with replacement, then each drawn cluster's values with
//!   replacement (a two-level, or hierarchical, bootstrap); the statistic is the mean of the
//!   drawn clusters' means, as the estimate is the mean of the seeds' means.
//!
//! The interval is the `(1 - level) / 2` and `(1 + level) / 2` quantiles of the resampled
//! statistics (linear interpolation between order statistics, NumPy's default). With few
//! clusters the seed level is coarse: two seeds give at most three distinct seed draws.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

impl Interval {
    /// Whether `value` lies inside (ends included).
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// Settings of a percentile bootstrap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// Resamples drawn.
    pub resamples: usize,
    /// Coverage of the interval (0.95).
    pub level: f64,
    /// Seed of the ChaCha8 generator; fixed, so reports are reproducible.
    pub seed: u64,
}

impl Default for Bootstrap {
    /// 10,000 resamples, 95 %, seed 17.
    fn default() -> Self {
        Bootstrap {
            resamples: 10_000,
            level: 0.95,
            seed: 17,
        }
    }
}

impl Bootstrap {
    /// The resampled statistics of `clusters` (empty clusters ignored), sorted; `None` with
    /// fewer than two values in all, where resampling says nothing.
    pub fn distribution(&self, clusters: &[Vec<f64>]) -> Option<Vec<f64>> {
        let clusters: Vec<&[f64]> = clusters
            .iter()
            .filter(|c| !c.is_empty())
            .map(Vec::as_slice)
            .collect();
        if clusters.iter().map(|c| c.len()).sum::<usize>() < 2 {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut statistics: Vec<f64> = (0..self.resamples)
            .map(|_| resample_mean(&clusters, &mut rng))
            .collect();
        statistics.sort_by(f64::total_cmp);
        Some(statistics)
    }

    /// The percentile interval of the mean of `clusters`; `None` with fewer than two values.
    pub fn interval(&self, clusters: &[Vec<f64>]) -> Option<Interval> {
        Some(self.interval_of(&self.distribution(clusters)?))
    }

    /// The percentile interval of sorted resampled statistics.
    pub fn interval_of(&self, sorted: &[f64]) -> Interval {
        let tail = (1.0 - self.level) / 2.0;
        Interval {
            low: quantile(sorted, tail),
            high: quantile(sorted, 1.0 - tail),
        }
    }
}

/// The two-sided p-value that the resampled statistic's centre is 0, from sorted resampled
/// statistics: twice the smaller share of them on either side of 0 (0 counted on both),
/// each count plus one so that the p-value is never 0. It is the smallest `1 - level` whose
/// percentile interval leaves 0 out.
pub fn p_value_of_zero(sorted: &[f64]) -> f64 {
    let below = sorted.iter().filter(|s| **s <= 0.0).count();
    let above = sorted.iter().filter(|s| **s >= 0.0).count();
    let draws = sorted.len() as f64 + 1.0;
    (2.0 * (below.min(above) as f64 + 1.0) / draws).min(1.0)
}

/// Quantile `q` of sorted `values` with linear interpolation (`(n - 1) q` as position).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = (sorted.len() - 1) as f64 * q;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + fraction * (sorted[above] - sorted[below])
}

/// One resample's statistic (see the module docs).
fn resample_mean(clusters: &[&[f64]], rng: &mut ChaCha8Rng) -> f64 {
    if let [only] = clusters {
        return resample_within(only, rng);
    }
    let k = clusters.len();
    let total: f64 = (0..k)
        .map(|_| resample_within(clusters[rng.random_range(0..k)], rng))
        .sum();
    total / k as f64
}

/// The mean of `values.len()` draws from `values` with replacement.
fn resample_within(values: &[f64], rng: &mut ChaCha8Rng) -> f64 {
    let n = values.len();
    if n == 1 {
        return values[0];
    }
    let total: f64 = (0..n).map(|_| values[rng.random_range(0..n)]).sum();
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_samples() {
        let bootstrap = Bootstrap::default();
        assert_eq!(bootstrap.interval(&[]), None, "n = 0");
        assert_eq!(bootstrap.interval(&[vec![]]), None, "n = 0");
        assert_eq!(bootstrap.interval(&[vec![3.0]]), None, "one value");
        let equal = bootstrap.interval(&[vec![2.5; 7], vec![2.5; 3]]).unwrap();
        assert_eq!((equal.low, equal.high), (2.5, 2.5), "all equal");
    }

    #[test]
    fn two_values_give_the_extremes() {
        // Resampling {0, 1}: the mean is 0, 1/2 or 1 with probability 1/4, 1/2, 1/4, so both
        // 2.5 % tails fall on the extremes (about 2,500 draws each, far above 250).
        let interval = Bootstrap::default().interval(&[vec![0.0, 1.0]]).unwrap();
        assert_eq!((interval.low, interval.high), (0.0, 1.0));
    }

    #[test]
    fn two_single_value_seeds_resample_seeds() {
        // Two seeds with one value each: seeds are drawn with replacement, so the statistic
        // is 1, 2 or 3 with probability 1/4, 1/2, 1/4: the interval spans [1, 3].
        let interval = Bootstrap::default()
            .interval(&[vec![1.0], vec![3.0]])
            .unwrap();
        assert_eq!((interval.low, interval.high), (1.0, 3.0));
    }

    #[test]
    fn seeds_widen_the_interval() {
        // Two seeds far apart: drawing seeds adds their spread, which pooling the questions
        // of both as one sample would hide.
        let low: Vec<f64> = (0..20).map(|i| f64::from(i % 5)).collect();
        let high: Vec<f64> = low.iter().map(|v| v + 10.0).collect();
        let bootstrap = Bootstrap::default();
        let two_level = bootstrap.interval(&[low.clone(), high.clone()]).unwrap();
        let pooled = bootstrap.interval(&[[low, high].concat()]).unwrap();
        assert!(two_level.high - two_level.low > 2.0 * (pooled.high - pooled.low));
        assert!(two_level.contains(7.0) && pooled.contains(7.0));
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        // Twenty distinct values, so that two seeds' 2.5 % quantiles land on different means.
        let values = vec![(0..20).map(|i| f64::from((i * 7) % 20) / 19.0).collect()];
        let bootstrap = Bootstrap::default();
        assert_eq!(bootstrap.interval(&values), bootstrap.interval(&values));
        let other = Bootstrap {
            seed: 18,
            ..bootstrap
        };
        assert_ne!(bootstrap.interval(&values), other.interval(&values));
    }

    #[test]
    fn covers_the_true_mean_about_95_percent_of_the_time() {
        // 200 samples of 40 draws from Uniform(0, 1) (true mean 1/2), each with its own data
        // seed; the percentile interval of a mean is slightly narrow for n = 40 (about 93-94 %
        // coverage in theory), so 90-99 % is the accepted band.
        let bootstrap = Bootstrap {
            resamples: 2_000,
            ..Bootstrap::default()
        };
        let covered = (0..200u64)
            .filter(|data_seed| {
                let mut rng = ChaCha8Rng::seed_from_u64(1_000 + data_seed);
                let values: Vec<f64> = (0..40).map(|_| rng.random::<f64>()).collect();
                bootstrap.interval(&[values]).unwrap().contains(0.5)
            })
            .count();
        assert!((180..=198).contains(&covered), "covered {covered} of 200");
    }

    #[test]
    fn p_value_of_zero_counts_both_sides() {
        // All 3 above zero: 2 * (0 + 1) / (3 + 1).
        assert_eq!(p_value_of_zero(&[1.0, 2.0, 3.0]), 0.5);
        assert_eq!(p_value_of_zero(&[-1.0, 0.0, 0.0, 2.0]), 1.0);
        // All 9,999 above zero: 2 * (0 + 1) / 10,000.
        assert_eq!(p_value_of_zero(&vec![0.5; 9_999]), 0.0002);
    }

    #[test]
    fn quantiles_interpolate() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        assert_eq!(quantile(&sorted, 0.5), 3.0);
        assert!((quantile(&sorted, 0.1) - 1.4).abs() < 1e-15);
        assert_eq!(quantile(&sorted, 1.0), 5.0);
    }
}

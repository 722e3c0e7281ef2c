//! A method against the baseline on the same seeds and questions: the mean difference with its
//! paired bootstrap interval and p-value, and the Wilcoxon signed-rank test with the
//! rank-biserial correlation.
//!
//! Pairs are the (seed, question) pairs both samples have (for values of whole runs, the seeds
//! both have). The bootstrap resamples the differences as [`Bootstrap`] resamples a cell (seeds,
//! then questions within seeds). The signed-rank test ranks one difference per question,
//! averaged over the seeds that have it, because the same question under two seeds is not an
//! independent observation; for values of whole runs, one difference per seed.
//!
//! The bootstrap p-value is too optimistic for a handful of pairs (two positive differences
//! already give about 0.0002), while the exact signed-rank test cannot go below 0.05 with
//! fewer than six units; the report's significance marks therefore use the signed-rank test.

use super::{
    bootstrap::{p_value_of_zero, Bootstrap, Interval},
    wilcoxon::{wilcoxon, Wilcoxon},
    Sample,
};

/// The comparison of a method with the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Matched (seed, question) pairs.
    pub pairs: usize,
    /// Method minus baseline: the mean over seeds of each seed's mean difference.
    pub difference: f64,
    /// The paired bootstrap interval of `difference`; `None` with a single pair.
    pub interval: Option<Interval>,
    /// Two-sided bootstrap p-value that the mean difference is 0; `None` with a single pair.
    pub p_bootstrap: Option<f64>,
    /// The signed-rank test of the per-question (or per-seed) differences.
    pub wilcoxon: Wilcoxon,
}

/// Compares `method` with `baseline` on their matched pairs; `None` when they share none.
pub fn paired(method: &Sample, baseline: &Sample, bootstrap: &Bootstrap) -> Option<Paired> {
    let mut differences = Sample::default();
    for (seed, question, value) in method.iter() {
        if let Some(base) = baseline.value(seed, question) {
            let question = (!question.is_empty()).then_some(question);
            differences.push(seed, question, value - base);
        }
    }
    let difference = differences.mean()?;
    let distribution = bootstrap.distribution(&differences.clusters());
    Some(Paired {
        pairs: differences.len(),
        difference,
        interval: distribution.as_deref().map(|d| bootstrap.interval_of(d)),
        p_bootstrap: distribution.as_deref().map(p_value_of_zero),
        wilcoxon: wilcoxon(&differences.unit_means()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(values: &[(u64, &str, f64)]) -> Sample {
        let mut sample = Sample::default();
        for (seed, question, value) in values {
            sample.push(*seed, Some(question), *value);
        }
        sample
    }

    #[test]
    fn pairs_match_on_seed_and_question() {
        let method = sample(&[
            (0, "a", 5.0),
            (0, "b", 7.0),
            (1, "a", 6.0),
            (1, "b", 9.0),
            (2, "a", 1.0),
        ]);
        let baseline = sample(&[(0, "a", 4.0), (0, "b", 4.0), (1, "a", 4.0), (1, "c", 4.0)]);
        let compared = paired(&method, &baseline, &Bootstrap::default()).unwrap();
        // Matched: (0, a) +1, (0, b) +3, (1, a) +2; seed means 2 and 2.
        assert_eq!(compared.pairs, 3);
        assert_eq!(compared.difference, 2.0);
        // Per question over seeds: a (1 + 2) / 2 = 1.5, b 3: both positive, W+ = 3.
        assert_eq!(compared.wilcoxon.n, 2);
        assert_eq!(
            (compared.wilcoxon.w_plus, compared.wilcoxon.p_value),
            (3.0, 0.5)
        );
        assert_eq!(compared.wilcoxon.rank_biserial, 1.0);
        // Every resampled difference is positive: the smallest bootstrap p-value.
        assert_eq!(compared.p_bootstrap, Some(2.0 / 10_001.0));
        assert!(compared.interval.unwrap().low > 0.0);
    }

    #[test]
    fn identical_samples_do_not_differ() {
        let values = sample(&[(0, "a", 1.0), (0, "b", 0.0), (0, "c", 1.0)]);
        let compared = paired(&values, &values, &Bootstrap::default()).unwrap();
        assert_eq!(compared.difference, 0.0);
        assert_eq!(compared.p_bootstrap, Some(1.0));
        assert_eq!((compared.wilcoxon.n, compared.wilcoxon.p_value), (0, 1.0));
        let interval = compared.interval.unwrap();
        assert_eq!((interval.low, interval.high), (0.0, 0.0));
    }

    #[test]
    fn whole_run_values_pair_by_seed() {
        let mut method = Sample::default();
        let mut baseline = Sample::default();
        for seed in 0..6u64 {
            method.push(seed, None, 0.6 + 0.01 * seed as f64);
            baseline.push(seed, None, 0.5);
        }
        let compared = paired(&method, &baseline, &Bootstrap::default()).unwrap();
        // Six positive per-seed differences: exact p = 2 / 64.
        assert_eq!(compared.pairs, 6);
        assert_eq!(compared.wilcoxon.p_value, 0.031_25);
        assert!((compared.difference - 0.125).abs() < 1e-12);
    }

    #[test]
    fn nothing_in_common() {
        let method = sample(&[(0, "a", 1.0)]);
        let baseline = sample(&[(1, "a", 1.0)]);
        assert_eq!(paired(&method, &baseline, &Bootstrap::default()), None);
        let single = paired(&method, &method, &Bootstrap::default()).unwrap();
        assert_eq!(
            (single.pairs, single.interval, single.p_bootstrap),
            (1, None, None)
        );
    }
}

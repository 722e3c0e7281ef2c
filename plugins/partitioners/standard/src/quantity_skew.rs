//! `quantity-skew`: client sizes drawn from a power law, then whole examples dealt at random.
//!
//! Every client first gets one example; the other `n - n_clients` are shared in proportion to
//! weights `w_c = U_c^(-1 / exponent)`, `U_c ~ Uniform(0, 1]`, which are Pareto draws with shape
//! `exponent` and scale 1 (`P(w > x) = x^-exponent`): the smaller the exponent, the heavier the
//! tail and the more unequal the clients. Proportional shares are rounded by the largest
//! remainder method (ties to the lower client index), so sizes sum to `n` exactly.

use fedpref_plugin_api::{
    check_range, Assignment, Metric, Params, PartitionInput, PartitionOutput, PartitionerFunction,
    PluginError,
};
use rand::{seq::SliceRandom, Rng};

use crate::common;

/// Power-law client sizes with iid content.
#[derive(Debug, Clone, Copy)]
pub struct QuantitySkew {
    /// Pareto shape of the size weights; `exponent` (default 1.5).
    exponent: f64,
}

impl QuantitySkew {
    /// Reads `exponent` in `[0.05, 100]`.
    ///
    /// # Errors
    /// `InvalidParams` for out-of-range or unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let exponent = check_range("exponent", params.f64_or("exponent", 1.5)?, 0.05, 100.0)?;
        params.finish()?;
        Ok(Self { exponent })
    }
}

impl PartitionerFunction for QuantitySkew {
    fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput, PluginError> {
        let examples = input.examples.as_slice();
        let n = examples.len();
        let n_clients = common::check_counts("quantity-skew", n, input.n_clients, "examples")?;
        let mut rng = common::rng(input.seed);
        // In log space and scaled by the largest, so small exponents cannot overflow.
        let log_weights: Vec<f64> = (0..n_clients)
            .map(|_| -(1.0 - rng.random::<f64>()).ln() / self.exponent)
            .collect();
        let max = log_weights
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = log_weights.iter().map(|l| (l - max).exp()).collect();
        let sizes: Vec<usize> = largest_remainder(&weights, n - n_clients)
            .into_iter()
            .map(|extra| extra + 1)
            .collect();
        let mut items: Vec<Assignment> = examples.iter().map(common::whole).collect();
        items.shuffle(&mut rng);
        let clients = common::cut(items, &sizes);
        let total: f64 = weights.iter().sum();
        let largest = weights.iter().copied().fold(0.0, f64::max);
        let metrics = vec![Metric::new("largest_weight_share", largest / total)];
        Ok(common::output(clients, metrics))
    }
}

/// `total` split in proportion to `weights` (all finite and positive), rounded by the largest
/// remainder method; the parts sum to `total`.
pub fn largest_remainder(weights: &[f64], total: usize) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| w / sum * total as f64).collect();
    // Floors of non-negative values no larger than `total`; the clamp absorbs rounding.
    let mut parts: Vec<usize> = exact
        .iter()
        .map(|x| (x.floor() as usize).min(total))
        .collect();
    let assigned: usize = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let mut left = total.saturating_sub(assigned);
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    // Floors never sum above the total in exact arithmetic; trim if floating point disagreed.
    let mut excess = parts.iter().sum::<usize>().saturating_sub(total);
    for part in parts.iter_mut().rev() {
        let take = excess.min(*part);
        *part -= take;
        excess -= take;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder_sums_and_rounds() {
        assert_eq!(largest_remainder(&[1.0, 1.0, 1.0], 10), vec![4, 3, 3]);
        assert_eq!(largest_remainder(&[3.0, 1.0], 8), vec![6, 2]);
        assert_eq!(largest_remainder(&[1.0, 2.0], 0), vec![0, 0]);
        assert_eq!(largest_remainder(&[1e300, 1.0], 5), vec![5, 0]);
    }
}

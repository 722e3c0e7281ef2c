//! `dirichlet`: label (category) skew with concentration `alpha`.
//!
//! The rule of Hsu et al. (2019) as implemented in NIID-Bench (Li et al. 2022) and FedLab: for
//! each category, in sorted order, shuffle its examples, draw client proportions
//! `p ~ Dir(alpha, ..., alpha)`, zero the share of clients that already hold `n / n_clients`
//! examples or more (this keeps sizes balanced), renormalise and cut the category's examples at
//! the cumulative proportions. The whole draw is repeated until every client holds at least
//! `min_size` examples, at most `max_attempts` times.
//!
//! The category is `ExampleMeta::category`: the host fills it from a configured column, or with
//! length quantile buckets when the data has none. Small `alpha` (0.1) gives each client few
//! categories; large `alpha` (100) approaches `iid`.

use std::collections::BTreeMap;

use fedpref_plugin_api::{
    check_range, Assignment, Metric, Params, PartitionInput, PartitionOutput, PartitionerFunction,
    PluginError,
};
use rand::seq::SliceRandom;

use crate::{common, gamma};

/// Category skew drawn from a symmetric Dirichlet distribution.
#[derive(Debug, Clone, Copy)]
pub struct Dirichlet {
    /// The gamma draws of shape `alpha` (the concentration, default 0.5) behind each
    /// `Dir(alpha)` draw.
    ln_gamma: gamma::LogGamma,
    /// Fewest examples a client may end with; `min_size` (default 1).
    min_size: u32,
    /// How many complete draws to try before giving up; `max_attempts` (default 1000).
    max_attempts: u32,
}

impl Dirichlet {
    /// Reads `alpha` (in `[1e-4, 1e6]`), `min_size` (>= 1) and `max_attempts` (>= 1).
    ///
    /// # Errors
    /// `InvalidParams` for out-of-range or unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let alpha = check_range("alpha", params.f64_or("alpha", 0.5)?, 1e-4, 1e6)?;
        let ln_gamma = gamma::LogGamma::new(alpha).map_err(|e| {
            PluginError::invalid_params(format!("`alpha` = {alpha} is not a gamma shape: {e}"))
        })?;
        let min_size = params.whole_or("min_size", 1, 1..)?;
        let max_attempts = params.whole_or("max_attempts", 1000, 1..)?;
        params.finish()?;
        Ok(Self {
            ln_gamma,
            min_size,
            max_attempts,
        })
    }
}

impl PartitionerFunction for Dirichlet {
    fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput, PluginError> {
        let examples = input.examples.as_slice();
        let n = examples.len();
        let n_clients = common::check_counts("dirichlet", n, input.n_clients, "examples")?;
        let min_size = self.min_size as usize;
        if n < n_clients * min_size {
            return Err(PluginError::invalid_input(format!(
                "dirichlet: {n} examples cannot give {n_clients} clients min_size = {min_size} each; \
                 lower min_size or n_clients"
            )));
        }
        let mut by_category: BTreeMap<&str, Vec<Assignment>> = BTreeMap::new();
        for meta in examples {
            by_category
                .entry(meta.category.as_str())
                .or_default()
                .push(common::whole(meta));
        }
        let mut rng = common::rng(input.seed);
        let target = n as f64 / n_clients as f64;
        let mut smallest = 0;
        for attempt in 1..=self.max_attempts {
            let mut clients: Vec<Vec<Assignment>> = vec![Vec::new(); n_clients];
            for members in by_category.values() {
                let mut members = members.clone();
                members.shuffle(&mut rng);
                let mut shares = gamma::dirichlet(&self.ln_gamma, n_clients, &mut rng);
                for (share, client) in shares.iter_mut().zip(&clients) {
                    if client.len() as f64 >= target {
                        *share = 0.0;
                    }
                }
                let total: f64 = shares.iter().sum();
                if total <= 0.0 {
                    // Cannot happen while examples remain (some client is below the mean), but
                    // an even spread is the safe answer if rounding ever says otherwise.
                    shares.iter_mut().for_each(|s| *s = 1.0);
                }
                let total: f64 = shares.iter().sum();
                let sizes = cut_sizes(&shares, total, members.len());
                for (client, part) in clients.iter_mut().zip(common::cut(members, &sizes)) {
                    client.extend(part);
                }
            }
            smallest = clients.iter().map(Vec::len).min().unwrap_or(0);
            if smallest >= min_size {
                let metrics = vec![
                    Metric::new("categories", by_category.len() as f64),
                    Metric::new("attempts", f64::from(attempt)),
                ];
                return Ok(common::output(clients, metrics));
            }
        }
        Err(PluginError::invalid_input(format!(
            "dirichlet: after max_attempts = {} draws some client still had fewer than min_size = {min_size} \
             examples (smallest: {smallest}); raise alpha, lower min_size or n_clients, or raise max_attempts",
            self.max_attempts
        )))
    }
}

/// Sizes of the runs cut at `floor(cumsum(shares) / total * len)`, as NumPy's
/// `np.split(idx, (np.cumsum(p) * len).astype(int)[:-1])` does; they sum to `len`.
fn cut_sizes(shares: &[f64], total: f64, len: usize) -> Vec<usize> {
    let mut sizes = Vec::with_capacity(shares.len());
    let mut cumulative = 0.0;
    let mut previous = 0usize;
    for (i, share) in shares.iter().enumerate() {
        cumulative += share;
        let point = if i + 1 == shares.len() {
            len
        } else {
            // Clamped to [previous, len] so rounding can never yield a negative run.
            ((cumulative / total * len as f64).floor() as usize).clamp(previous, len)
        };
        sizes.push(point - previous);
        previous = point;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_sizes_follow_cumulative_floors() {
        assert_eq!(cut_sizes(&[0.5, 0.25, 0.25], 1.0, 10), vec![5, 2, 3]);
        assert_eq!(cut_sizes(&[0.0, 1.0, 0.0], 1.0, 7), vec![0, 7, 0]);
        assert_eq!(cut_sizes(&[1.0, 1.0], 2.0, 3), vec![1, 2]);
    }
}

//! Helpers shared by every partition rule: the seeded generator, input checks, equal dealing and the output with its size metrics.
//!
//! Fed by the rule modules; feeds [`PartitionOutput`] back to the host.

use fedpref_plugin_api::{Assignment, ExampleMeta, Metric, PartitionOutput, PluginError, View};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator of every rule: ChaCha8 seeded with the partition seed, so a partition is a pure
/// function of (examples, n_clients, seed, params) on every platform.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// The whole example `meta`.
pub fn whole(meta: &ExampleMeta) -> Assignment {
    Assignment {
        example: meta.index,
        view: View::Whole,
    }
}

/// Checks that `n_items` things can be dealt to `n_clients` clients with at least one each.
///
/// # Errors
/// `InvalidInput` for zero clients or fewer items than clients.
pub fn check_counts(
    rule: &str,
    n_items: usize,
    n_clients: u32,
    items: &str,
) -> Result<usize, PluginError> {
    let n_clients = n_clients as usize;
    if n_clients == 0 {
        return Err(PluginError::invalid_input(format!(
            "{rule}: n_clients must be at least 1, got 0"
        )));
    }
    if n_items < n_clients {
        return Err(PluginError::invalid_input(format!(
            "{rule}: {n_items} {items} cannot fill {n_clients} clients with at least one each; \
             use at most {n_items} clients or more data"
        )));
    }
    Ok(n_clients)
}

/// Shuffles `items` and cuts them into `n_clients` runs whose lengths differ by at most one
/// (the first `len % n_clients` clients get the extra item).
pub fn deal_equal<T>(mut items: Vec<T>, n_clients: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<T>> {
    items.shuffle(rng);
    let sizes = equal_sizes(items.len(), n_clients);
    cut(items, &sizes)
}

/// `n` split into `k` sizes differing by at most one, larger first.
pub fn equal_sizes(n: usize, k: usize) -> Vec<usize> {
    (0..k).map(|c| n / k + usize::from(c < n % k)).collect()
}

/// Cuts `items` into consecutive runs of the given sizes, which must sum to `items.len()`.
pub fn cut<T>(items: Vec<T>, sizes: &[usize]) -> Vec<Vec<T>> {
    debug_assert_eq!(sizes.iter().sum::<usize>(), items.len());
    let mut rest = items.into_iter();
    sizes
        .iter()
        .map(|&s| rest.by_ref().take(s).collect())
        .collect()
}

/// Builds the output, adding `clients`, `min_client_size` and `max_client_size` to `metrics`.
pub fn output(clients: Vec<Vec<Assignment>>, mut metrics: Vec<Metric>) -> PartitionOutput {
    let sizes = clients.iter().map(Vec::len);
    let min = sizes.clone().min().unwrap_or(0);
    let max = sizes.max().unwrap_or(0);
    metrics.push(Metric::new("clients", clients.len() as f64));
    metrics.push(Metric::new("min_client_size", min as f64));
    metrics.push(Metric::new("max_client_size", max as f64));
    PartitionOutput {
        clients: clients.into_iter().map(Into::into).collect(),
        metrics: metrics.into(),
    }
}

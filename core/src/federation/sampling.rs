//! Seeded randomness of a run, derived from (seed, purpose, round, client) rather than drawn from
//! one stream: any round can be replayed on resume without saving generator states.

use rand::{seq::index::sample, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{FederationSection, Sampling};

/// What a derived seed is for; keeps streams of different purposes independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Which clients a round samples.
    ClientSampling = 1,
    /// Batch order and LoRA dropout of one client in one round.
    LocalTraining = 2,
    /// Fault injection.
    Faults = 3,
    /// LoRA initialization.
    AdapterInit = 4,
    /// The data partition.
    Partition = 5,
    // 6 was KTO's fixed KL pairing, now formed step by step; not reused, so that the other
    // streams keep their seeds.
    /// The held-out split.
    EvalSplit = 7,
    /// The Gaussian noise of client-level differential privacy.
    PrivacyNoise = 8,
    /// Codecs' draws (stochastic rounding, random-k), shared by both ends of a link.
    Compression = 9,
}

/// A seed for `stream` at (`round`, `client`), mixed with SplitMix64 so nearby inputs give
/// unrelated outputs.
pub fn derive(seed: u64, stream: Stream, round: u64, client: u64) -> u64 {
    let mut x = seed;
    for part in [stream as u64, round, client] {
        x = splitmix64(x ^ splitmix64(part));
    }
    x
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `k` clients (of `n`) sampled in `round`, without replacement, sorted.
pub fn sample_clients(seed: u64, round: u32, n: u32, k: u32) -> Vec<u32> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(derive(seed, Stream::ClientSampling, u64::from(round), 0));
    let mut clients: Vec<u32> = sample(&mut rng, n as usize, k.min(n) as usize)
        .into_iter()
        .map(|c| c as u32)
        .collect();
    clients.sort_unstable();
    clients
}

/// The clients (of `n`) round `round` samples as `federation.sampling` says: exactly
/// `clients_per_round` without replacement, or each with probability `clients_per_round / n`
/// (Poisson, as client-level differential privacy's accountant assumes).
pub fn round_clients(federation: &FederationSection, seed: u64, round: u32, n: u32) -> Vec<u32> {
    let k = federation.clients_per_round.min(n);
    match federation.sampling {
        Sampling::Fixed => sample_clients(seed, round, n, k),
        Sampling::Poisson => {
            let mut rng = ChaCha8Rng::seed_from_u64(derive(
                seed,
                Stream::ClientSampling,
                u64::from(round),
                0,
            ));
            let rate = f64::from(k) / f64::from(n.max(1));
            (0..n).filter(|_| rng.random::<f64>() < rate).collect()
        }
    }
}

/// With probability `p`, the step (in `0..steps`) before which client `client` fails in `round`.
pub fn failure_step(seed: u64, round: u32, client: u32, p: f64, steps: u32) -> Option<u32> {
    if p <= 0.0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(derive(
        seed,
        Stream::Faults,
        u64::from(round),
        u64::from(client),
    ));
    (rng.random::<f64>() < p).then(|| rng.random_range(0..steps.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_seeded_sorted_and_without_replacement() {
        let a = sample_clients(7, 3, 10, 4);
        assert_eq!(a, sample_clients(7, 3, 10, 4));
        assert_eq!(a.len(), 4);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|&c| c < 10));
        let rounds: Vec<Vec<u32>> = (0..20).map(|r| sample_clients(7, r, 10, 4)).collect();
        assert!(rounds.iter().any(|r| *r != a), "rounds must differ");
        assert_eq!(sample_clients(7, 0, 3, 5), vec![0, 1, 2]);
    }

    #[test]
    fn every_client_is_sampled_about_equally_often() {
        let mut counts = [0u32; 10];
        for round in 0..2000 {
            for c in sample_clients(1, round, 10, 3) {
                counts[c as usize] += 1;
            }
        }
        // Expected 600 each; the binomial standard deviation is about 20.5, so 5 sigma is ~100.
        assert!(
            counts.iter().all(|&c| (500..=700).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn poisson_sampling_takes_each_client_at_the_rate() {
        let federation = FederationSection {
            clients: 10,
            clients_per_round: 3,
            sampling: Sampling::Poisson,
            ..FederationSection::default()
        };
        let rounds: Vec<Vec<u32>> = (0..2000)
            .map(|r| round_clients(&federation, 1, r, 10))
            .collect();
        let total: usize = rounds.iter().map(Vec::len).sum();
        // Expected 6000 draws (0.3 x 10 x 2000), standard deviation about 65.
        assert!((5700..=6300).contains(&total), "{total}");
        assert!(rounds.iter().any(|r| r.len() != 3), "the count varies");
        assert_eq!(rounds[5], round_clients(&federation, 1, 5, 10));
    }

    #[test]
    fn failures_follow_the_probability() {
        let failed = (0..4000)
            .filter(|&r| failure_step(3, r, 1, 0.25, 10).is_some())
            .count();
        // Expected 1000, standard deviation ~27.
        assert!((880..=1120).contains(&failed), "{failed}");
        assert!((0..100)
            .filter_map(|r| failure_step(3, r, 1, 0.5, 10))
            .all(|s| s < 10));
        assert!((0..100).all(|r| failure_step(3, r, 1, 0.0, 10).is_none()));
    }

    #[test]
    fn derived_seeds_differ_by_stream_round_and_client() {
        let base = derive(0, Stream::LocalTraining, 1, 2);
        assert_ne!(base, derive(0, Stream::Faults, 1, 2));
        assert_ne!(base, derive(0, Stream::LocalTraining, 2, 1));
        assert_ne!(base, derive(1, Stream::LocalTraining, 1, 2));
        assert_eq!(base, derive(0, Stream::LocalTraining, 1, 2));
    }
}

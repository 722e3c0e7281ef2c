//! Client-level differential privacy (DP-FedAvg, McMahan et al. 2018), between a round's
//! training and its aggregation, so every aggregator plugin runs unchanged: each surviving
//! client's update `Δ_k = params_k − global` is clipped to L2 norm C, the clipped updates are
//! summed (in f64), Gaussian noise of standard deviation z·C is added to every coordinate, and
//! the sum is divided by the expected number of clients, q·N (the fixed-denominator estimator,
//! whose sensitivity to one client is C / qN whoever took part). The aggregator then sees one
//! update, `global + noised mean`.
//!
//! Clients are Poisson-sampled at rate q (`federation.sampling = "poisson"`: add/remove
//! neighbours), or exactly qN of them are drawn without replacement (`"fixed"`: replace-one
//! neighbours, under which one client moves the clipped sum by up to 2C, so the accountant sees
//! noise multiplier z/2); the noise is drawn from a seed the run derives from its seed and the
//! round, so a resumed run adds the same noise. The guarantee covers what is released: the global adapters, to anyone who sees them.
//! It does not cover the server, which sees each clipped update before the noise (no secure
//! aggregation).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::{poisson_gaussian_epsilon, PrivacySection, RdpAccountant};
use crate::{Error, Result};

/// A round's privacy facts, in its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacyRecord {
    /// Updates whose norm exceeded the clip norm (of those aggregated); under example-level
    /// DP, example gradients over it.
    pub clipped: u32,
    /// Mean norm of the updates before clipping; under example-level DP, of the example
    /// gradients.
    pub mean_update_norm: f64,
    /// The clip norm this round used (it moves with adaptive clipping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
    /// With adaptive clipping: the noised fraction of updates within the clip norm, from
    /// which the next round's clip norm follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_clip: Option<f64>,
    /// ε spent after this round, at the configured δ.
    pub epsilon: f64,
    /// The configured δ.
    pub delta: f64,
}

/// Where a round's noise comes from and what it is divided by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundNoise {
    /// The seed of this round's noise (the run derives it from its seed and the round).
    pub seed: u64,
    /// The round, 0-based (ε is reported after it).
    pub round: u32,
    /// How the round's clients were drawn.
    pub draw: ClientDraw,
    /// The expected number of clients per round, qN: the fixed denominator.
    pub expected_clients: f64,
}

/// How a round's clients are drawn, which decides the accounting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClientDraw {
    /// Each client independently with probability `rate` (add/remove neighbours).
    Poisson {
        /// q.
        rate: f64,
    },
    /// Exactly `rate × clients` clients, without replacement (replace-one neighbours).
    FixedSize {
        /// q = m / N.
        rate: f64,
    },
}

/// ε after `rounds` rounds at the section's δ.
pub fn epsilon_after(privacy: &PrivacySection, draw: ClientDraw, rounds: u32) -> f64 {
    let (z, rounds) = (privacy.noise_multiplier, u64::from(rounds));
    match draw {
        ClientDraw::Poisson { rate } => poisson_gaussian_epsilon(rate, z, rounds, privacy.delta),
        ClientDraw::FixedSize { rate } => {
            // Replacing one client moves the sum of clipped updates by up to 2C: the noise
            // z·C is z/2 times that sensitivity.
            let mut accountant = RdpAccountant::default();
            accountant.compose_fixed_size_gaussian(rate, z / 2.0, rounds);
            accountant.epsilon(privacy.delta).0
        }
    }
}

/// What [`privatize`] gives: the noised parameters, the round's record, and the clip norm of
/// the next round.
#[derive(Debug, Clone, PartialEq)]
pub struct Privatized {
    /// `global + noised mean update`.
    pub params: Vec<f32>,
    /// The round's privacy facts.
    pub record: PrivacyRecord,
    /// The clip norm for the next round (this round's unless clipping adapts).
    pub next_clip: f64,
}

/// The noised mean update added to `global` (see the module docs), from the updates of the
/// clients that survived the round (possibly none: the noise is added all the same) clipped to
/// `clip` (the configured clip norm, or where adaptive clipping has taken it).
///
/// # Errors
/// [`Error::Usage`] for a noise scale that is not a finite non-negative number, or adaptive
/// clipping whose count noise leaves no noise for the updates (the config's validation refuses
/// those first).
pub fn privatize(
    privacy: &PrivacySection,
    noise_at: RoundNoise,
    clip: f64,
    global: &[f32],
    updates: &[&[f32]],
) -> Result<Privatized> {
    let mut sum = vec![0f64; global.len()];
    let (mut clipped, mut norms) = (0u32, 0f64);
    for params in updates {
        let norm = params
            .iter()
            .zip(global)
            .map(|(p, g)| (f64::from(*p) - f64::from(*g)).powi(2))
            .sum::<f64>()
            .sqrt();
        norms += norm;
        let scale = if norm > clip {
            clipped += 1;
            clip / norm
        } else {
            1.0
        };
        for ((s, p), g) in sum.iter_mut().zip(*params).zip(global) {
            *s += scale * (f64::from(*p) - f64::from(*g));
        }
    }
    let expected = noise_at.expected_clients;
    let z = privacy.update_noise_multiplier(expected).ok_or_else(|| {
        Error::Usage(format!(
            "privacy.quantile_noise = {} leaves no noise for the updates: it must exceed \
             privacy.noise_multiplier / 2",
            privacy.quantile_noise_for(expected)
        ))
    })?;
    let noise = normal(z * clip)?;
    let mut rng = ChaCha8Rng::seed_from_u64(noise_at.seed);
    let params = global
        .iter()
        .zip(&sum)
        .map(|(g, s)| (f64::from(*g) + (s + noise.sample(&mut rng)) / expected) as f32)
        .collect();
    let mut record = PrivacyRecord {
        clipped,
        mean_update_norm: norms / updates.len().max(1) as f64,
        clip_norm: Some(clip),
        within_clip: None,
        epsilon: epsilon_after(privacy, noise_at.draw, noise_at.round + 1),
        delta: privacy.delta,
    };
    let mut next_clip = clip;
    if privacy.adaptive_clipping() {
        // The count's noise comes from a stream of its own.
        rng.set_stream(1);
        let count_noise = normal(privacy.quantile_noise_for(expected))?.sample(&mut rng);
        let within = updates.len() as f64 - f64::from(clipped);
        // Σ (b_k − ½) has sensitivity ½ whoever took part; ½ is added back after dividing.
        let fraction = (within - updates.len() as f64 / 2.0 + count_noise) / expected + 0.5;
        next_clip =
            clip * (-privacy.clip_learning_rate * (fraction - privacy.target_quantile)).exp();
        record.within_clip = Some(fraction);
    }
    Ok(Privatized {
        params,
        record,
        next_clip,
    })
}

/// A centred Gaussian of standard deviation `std`.
fn normal(std: f64) -> Result<Normal<f64>> {
    Normal::new(0.0, std).map_err(|_| {
        Error::Usage(format!(
            "privacy noise of standard deviation {std} (noise multiplier x clip norm) is not one"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::PrivacyMode;

    /// 2 of 10 clients a round: q = 0.2, qN = 2.
    fn sections(clip_norm: f64, noise_multiplier: f64) -> (PrivacySection, RoundNoise) {
        let privacy = PrivacySection {
            mode: PrivacyMode::Client,
            clip_norm,
            noise_multiplier,
            ..PrivacySection::default()
        };
        let noise = RoundNoise {
            seed: 7,
            round: 0,
            draw: ClientDraw::Poisson { rate: 0.2 },
            expected_clients: 2.0,
        };
        (privacy, noise)
    }

    #[test]
    fn updates_are_clipped_to_the_norm_and_divided_by_the_expected_count() {
        // Without noise the result is exact: global + (Δ1 / 5 + Δ2) / (q N), q N = 2.
        let (privacy, noise) = sections(1.0, 0.0);
        let global = [1.0f32, -2.0, 0.5];
        let big = [4.0f32, 2.0, 0.5]; // Δ = (3, 4, 0), norm 5
        let small = [1.3f32, -2.4, 0.5]; // Δ = (0.3, −0.4, 0), norm 0.5
        let Privatized { params, record, .. } =
            privatize(&privacy, noise, 1.0, &global, &[&big, &small]).expect("privatize");
        let expected = [1.0 + (0.6 + 0.3) / 2.0, -2.0 + (0.8 - 0.4) / 2.0, 0.5];
        for (p, e) in params.iter().zip(expected) {
            assert!(
                (f64::from(*p) - e).abs() < 1e-6,
                "{params:?} vs {expected:?}"
            );
        }
        assert_eq!(record.clipped, 1);
        assert!((record.mean_update_norm - 2.75).abs() < 1e-6);
    }

    #[test]
    fn the_noise_has_the_configured_standard_deviation() {
        // No update: every coordinate is N(0, (z C)²) / (q N) = N(0, 0.325²).
        let (privacy, noise) = sections(0.5, 1.3);
        let global = vec![0f32; 200_000];
        let params = privatize(&privacy, noise, 0.5, &global, &[])
            .expect("privatize")
            .params;
        let n = params.len() as f64;
        let mean = params.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
        let std = (params
            .iter()
            .map(|&p| (f64::from(p) - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        let sigma = 1.3 * 0.5 / 2.0;
        // Standard errors: of the mean sigma / sqrt(n) = 7e-4, of the std sigma / sqrt(2n) = 5e-4.
        assert!(mean.abs() < 5.0 * sigma / n.sqrt(), "mean {mean}");
        assert!(
            (std - sigma).abs() < 5.0 * sigma / (2.0 * n).sqrt(),
            "std {std} vs {sigma}"
        );
    }

    #[test]
    fn the_noise_is_drawn_from_its_seed() {
        let (privacy, noise) = sections(1.0, 1.0);
        let global = vec![0.25f32; 64];
        let update = vec![0.5f32; 64];
        let draw = |seed| {
            privatize(
                &privacy,
                RoundNoise { seed, ..noise },
                1.0,
                &global,
                &[&update],
            )
            .expect("privatize")
            .params
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn each_round_reports_the_epsilon_spent_so_far() {
        let (privacy, noise) = sections(1.0, 1.1);
        let global = [0f32; 4];
        let epsilons: Vec<f64> = (0..5)
            .map(|round| {
                privatize(&privacy, RoundNoise { round, ..noise }, 1.0, &global, &[])
                    .expect("privatize")
                    .record
                    .epsilon
            })
            .collect();
        assert!(epsilons.windows(2).all(|w| w[0] < w[1]), "{epsilons:?}");
        assert_eq!(
            epsilons[4],
            epsilon_after(&privacy, ClientDraw::Poisson { rate: 0.2 }, 5)
        );
    }
}

#[cfg(test)]
mod adaptive_tests {
    use super::*;
    use crate::privacy::PrivacyMode;

    /// 10 clients a round expected (σ_b = 10 / 20 = 0.5), target the median, η = 0.2.
    fn adaptive() -> (PrivacySection, RoundNoise) {
        let privacy = PrivacySection {
            mode: PrivacyMode::Client,
            noise_multiplier: 0.5,
            target_quantile: 0.5,
            ..PrivacySection::default()
        };
        let noise = RoundNoise {
            seed: 3,
            round: 0,
            draw: ClientDraw::Poisson { rate: 0.5 },
            expected_clients: 10.0,
        };
        (privacy, noise)
    }

    /// Ten updates of norms 1, 2, …, 10 (along the first coordinate).
    fn updates() -> Vec<Vec<f32>> {
        (1..=10).map(|k| vec![k as f32, 0.0]).collect()
    }

    #[test]
    fn the_clip_norm_moves_toward_the_target_quantile() {
        let (privacy, noise) = adaptive();
        let updates = updates();
        let updates: Vec<&[f32]> = updates.iter().map(Vec::as_slice).collect();
        let global = [0f32; 2];
        for (clip, grows) in [(0.5, true), (20.0, false)] {
            let out = privatize(&privacy, noise, clip, &global, &updates).expect("privatize");
            let within = out.record.within_clip.expect("adaptive");
            // The count's noise is 0.5 / 10 = 0.05 on the fraction: five of it at most.
            let exact = if grows { 0.0 } else { 1.0 };
            assert!((within - exact).abs() < 0.25, "{within}");
            let expected = clip * (-0.2 * (within - 0.5)).exp();
            assert!((out.next_clip - expected).abs() <= 1e-12 * expected);
            assert_eq!(out.next_clip > clip, grows);
            assert_eq!(out.record.clip_norm, Some(clip));
        }
    }

    #[test]
    fn the_clip_norm_settles_at_the_median_of_the_update_norms() {
        let (privacy, noise) = adaptive();
        let updates = updates();
        let updates: Vec<&[f32]> = updates.iter().map(Vec::as_slice).collect();
        let mut clip = 0.1;
        let mut late = Vec::new();
        for round in 0..300 {
            let at = RoundNoise {
                round,
                seed: u64::from(round),
                ..noise
            };
            clip = privatize(&privacy, at, clip, &[0.0, 0.0], &updates)
                .expect("privatize")
                .next_clip;
            if round >= 200 {
                late.push(clip);
            }
        }
        let mean = late.iter().sum::<f64>() / late.len() as f64;
        // Half of the norms lie at or below any clip in [5, 6).
        assert!((4.5..6.5).contains(&mean), "{mean}");
    }

    #[test]
    fn the_count_takes_its_share_of_the_noise() {
        let (mut privacy, _) = adaptive();
        privacy.noise_multiplier = 1.0;
        privacy.quantile_noise = 1.0;
        // z_Δ = (1 − 1/4)^(−1/2).
        let z = privacy
            .update_noise_multiplier(10.0)
            .expect("room for both");
        assert!((z - 0.75f64.powf(-0.5)).abs() < 1e-12, "{z}");
        privacy.quantile_noise = 0.5;
        assert_eq!(privacy.update_noise_multiplier(10.0), None);
        privacy.target_quantile = 0.0;
        assert_eq!(privacy.update_noise_multiplier(10.0), Some(1.0));
    }
}

#[cfg(test)]
mod draw_tests {
    use super::*;

    #[test]
    fn fixed_size_rounds_are_accounted_at_half_the_noise_multiplier() {
        let privacy = PrivacySection {
            noise_multiplier: 1.6,
            ..PrivacySection::default()
        };
        let mut accountant = RdpAccountant::default();
        accountant.compose_fixed_size_gaussian(0.1, 0.8, 30);
        let fixed = epsilon_after(&privacy, ClientDraw::FixedSize { rate: 0.1 }, 30);
        assert_eq!(fixed, accountant.epsilon(1e-5).0);
        // Replace-one costs more than add/remove at the same rate.
        assert!(fixed > epsilon_after(&privacy, ClientDraw::Poisson { rate: 0.1 }, 30));
    }
}

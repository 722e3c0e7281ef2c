//! Round-level schedules: the learning rate of each round and the number of local steps.

use crate::config::{FederationSection, LocalSteps};

/// Cosine decay over rounds from `lr` to `lr_min`, constant within a round, as OpenFedLLM's
/// `cosine_learning_rate`: `lr_min + (lr - lr_min) (1 + cos(pi r / R)) / 2` for round `r` of `R`.
pub fn round_lr(lr: f64, lr_min: f64, round: u32, rounds: u32) -> f64 {
    let progress = f64::from(round) / f64::from(rounds.max(1));
    lr_min + 0.5 * (lr - lr_min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Optimizer steps a client with `n_units` training units takes in one round.
///
/// `epochs:E` spreads E epochs of the client's data over the rounds it is expected to be sampled
/// in (`rounds * clients_per_round / clients`), as the paper did with E = 3; at least one step.
pub fn local_steps(
    rule: LocalSteps,
    n_units: usize,
    units_per_step: usize,
    federation: &FederationSection,
) -> u32 {
    match rule {
        LocalSteps::Fixed(steps) => steps,
        LocalSteps::Epochs(rule) => {
            let expected_rounds = f64::from(federation.rounds)
                * f64::from(federation.clients_per_round)
                / f64::from(federation.clients.max(1));
            let steps_per_epoch = n_units as f64 / units_per_step.max(1) as f64;
            let steps = (rule.epochs * steps_per_epoch / expected_rounds.max(1e-9)).ceil();
            (steps as u32).max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EpochsRule;

    #[test]
    fn cosine_goes_from_lr_to_lr_min() {
        assert_eq!(round_lr(1e-4, 1e-5, 0, 10), 1e-4);
        assert!((round_lr(1e-4, 1e-5, 5, 10) - 5.5e-5).abs() < 1e-15);
        assert!((round_lr(1e-4, 1e-5, 10, 10) - 1e-5).abs() < 1e-15);
        // Monotone in between.
        let lrs: Vec<f64> = (0..=10).map(|r| round_lr(1e-4, 1e-5, r, 10)).collect();
        assert!(lrs.windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn the_epochs_rule_spreads_epochs_over_expected_rounds() {
        let federation = FederationSection {
            clients: 10,
            clients_per_round: 2,
            rounds: 20,
            ..Default::default()
        };
        // Expected rounds per client: 20 * 2 / 10 = 4. 3 epochs of 40 units at 8 per step = 15
        // steps, over 4 rounds: ceil(3.75) = 4.
        let rule = LocalSteps::Epochs(EpochsRule { epochs: 3.0 });
        assert_eq!(local_steps(rule, 40, 8, &federation), 4);
        assert_eq!(local_steps(rule, 1, 8, &federation), 1);
        assert_eq!(local_steps(LocalSteps::Fixed(7), 40, 8, &federation), 7);
    }
}

//! FedAvgM, published and OpenFedLLM's, by hand over three rounds.

use fedpref_plugin_api::Params;

use super::{assert_close, rounds};
use crate::FedAvgM;

fn fedavgm(params: &str) -> FedAvgM {
    FedAvgM::from_params(&Params::parse(params).unwrap()).unwrap()
}

/// Runs the three rounds, checking `w_{t+1}` and `v_t` after each.
#[track_caller]
fn check(mut aggregator: FedAvgM, want: [([f64; 3], [f64; 3]); 3], what: &str) {
    for (round, (global, velocity)) in rounds().iter().zip(want) {
        let out = round.run(&mut aggregator).unwrap();
        assert_close(
            &out.global,
            &global,
            &format!("{what} round {} global", round.round),
        );
        assert_close(
            aggregator.velocity(),
            &velocity,
            &format!("{what} round {} momentum", round.round),
        );
    }
}

// The example-weighted deltas of the fixture (FedAvg's mean minus w_t, see fedavg.rs):
// Δ_0 = [0.15625, −0.21875, −0.1875], Δ_1 = [0.125, 0.21875, −0.0625], Δ_2 = [0.3125, 0.25, −0.3125].

#[test]
fn published_momentum_with_defaults() {
    // β = 0.9, η = 1: v_0 = Δ_0; v_1 = 0.9 v_0 + Δ_1 = [0.265625, 0.021875, −0.23125];
    // v_2 = 0.9 v_1 + Δ_2 = [0.5515625, 0.2696875, −0.520625]; w_{t+1} = w_t + v_t.
    check(
        fedavgm(""),
        [
            ([0.65625, -1.21875, 1.8125], [0.15625, -0.21875, -0.1875]),
            (
                [0.890625, -1.103125, 1.64375],
                [0.265625, 0.021875, -0.23125],
            ),
            (
                [1.3015625, -0.7303125, 1.229375],
                [0.5515625, 0.2696875, -0.520625],
            ),
        ],
        "fedavgm",
    );
}

#[test]
fn published_momentum_with_a_server_learning_rate() {
    // β = 0.5, η = 0.5: v_1 = 0.5 v_0 + Δ_1 = [0.203125, 0.109375, −0.15625];
    // w_2 = w_1 + 0.5 v_1 = [0.625 + 0.1015625, −1.125 + 0.0546875, 1.875 − 0.078125].
    check(
        fedavgm(r#"{"momentum": 0.5, "server_lr": 0.5}"#),
        [
            ([0.578125, -1.109375, 1.90625], [0.15625, -0.21875, -0.1875]),
            (
                [0.7265625, -1.0703125, 1.796875],
                [0.203125, 0.109375, -0.15625],
            ),
            (
                [0.95703125, -0.84765625, 1.5546875],
                [0.4140625, 0.3046875, -0.390625],
            ),
        ],
        "fedavgm β=0.5 η=0.5",
    );
}

#[test]
fn openfedllm_momentum_defaults_to_the_authors_fork() {
    // β = 0.5 (the fork's fedopt_beta1), η = 1: v_0 = Δ_0;
    // v_1 = 0.5 v_0 + 0.5 Δ_1 = [0.140625, 0, −0.125], w_2 = w_1 + v_1 = [0.765625, −1.125, 1.75];
    // v_2 = 0.5 v_1 + 0.5 Δ_2 = [0.2265625, 0.125, −0.21875], w_3 = [0.9765625, −0.875, 1.53125].
    check(
        fedavgm(r#"{"variant": "openfedllm"}"#),
        [
            ([0.65625, -1.21875, 1.8125], [0.15625, -0.21875, -0.1875]),
            ([0.765625, -1.125, 1.75], [0.140625, 0.0, -0.125]),
            ([0.9765625, -0.875, 1.53125], [0.2265625, 0.125, -0.21875]),
        ],
        "fedavgm openfedllm defaults",
    );
}

#[test]
fn openfedllm_momentum_is_dampened_and_starts_at_the_delta() {
    // Upstream OpenFedLLM's β = 0.9: v_0 = Δ_0; v_1 = 0.9 v_0 + 0.1 Δ_1 = [0.153125, −0.175, −0.175];
    // v_2 = 0.9 v_1 + 0.1 Δ_2 = [0.1690625, −0.1325, −0.18875]; w_{t+1} = w_t + v_t.
    check(
        fedavgm(r#"{"variant": "openfedllm", "momentum": 0.9}"#),
        [
            ([0.65625, -1.21875, 1.8125], [0.15625, -0.21875, -0.1875]),
            ([0.778125, -1.3, 1.7], [0.153125, -0.175, -0.175]),
            (
                [0.9190625, -1.1325, 1.56125],
                [0.1690625, -0.1325, -0.18875],
            ),
        ],
        "fedavgm openfedllm",
    );
}

#[test]
fn openfedllm_momentum_with_half_decay_and_server_learning_rate() {
    // v_1 = 0.5 v_0 + 0.5 Δ_1 = [0.140625, 0, −0.125]; w_2 = w_1 + 0.5 v_1.
    check(
        fedavgm(r#"{"variant": "openfedllm", "momentum": 0.5, "server_lr": 0.5}"#),
        [
            ([0.578125, -1.109375, 1.90625], [0.15625, -0.21875, -0.1875]),
            ([0.6953125, -1.125, 1.8125], [0.140625, 0.0, -0.125]),
            (
                [0.86328125, -0.9375, 1.640625],
                [0.2265625, 0.125, -0.21875],
            ),
        ],
        "fedavgm openfedllm β=0.5 η=0.5",
    );
}

#[test]
fn uniform_weighting_averages_the_deltas_plainly() {
    // Round 0, uniform: Δ_0 = ([0.5, 0.5, 0] + [−0.25, −0.5, 0.5] + [0.25, −0.25, −0.5]) / 3.
    let mut aggregator = fedavgm(r#"{"weighting": "uniform"}"#);
    let out = rounds()[0].run(&mut aggregator).unwrap();
    assert_close(
        &out.global,
        &[0.5 + 0.5 / 3.0, -1.0 - 0.25 / 3.0, 2.0],
        "uniform fedavgm",
    );
}

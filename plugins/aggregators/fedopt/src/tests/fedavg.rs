//! FedAvg and FedProx: the example-weighted mean, by hand.

use fedpref_plugin_api::ClientPlan;

use super::{assert_close, make, rounds};

/// `Σ (n_i / n) y_i` per round, in eighths:
/// round 0, weights 1/8, 2/8, 5/8: (1·1 + 2·0.25 + 5·0.75)/8 = 0.65625, (−0.5 − 3 − 6.25)/8 =
/// −1.21875, (2 + 5 + 7.5)/8 = 1.8125; round 1, weights 3/8, 1/8, 4/8: (1.5 + 1 + 3.5)/8 = 0.75,
/// (−3 − 1.25 − 3)/8 = −0.90625, (6.75 + 1.75 + 6)/8 = 1.8125; round 2, weights 2/8, 6/8:
/// (1 + 7.5)/8 = 1.0625, (−3 − 3)/8 = −0.75, (4 + 7.5)/8 = 1.4375.
const FEDAVG: [[f32; 3]; 3] = [
    [0.65625, -1.21875, 1.8125],
    [0.75, -0.90625, 1.8125],
    [1.0625, -0.75, 1.4375],
];

#[test]
fn fedavg_is_the_example_weighted_mean() {
    let mut fedavg = make("fedavg", "");
    for (round, want) in rounds().iter().zip(FEDAVG) {
        let out = round.run(fedavg.as_mut()).unwrap();
        // Eighths of short binary fractions: exact in f32.
        assert_eq!(out.global.as_slice(), &want, "round {}", round.round);
    }
}

#[test]
fn fedavg_reports_the_update_norm_and_client_count() {
    let out = rounds()[0].run(make("fedavg", "").as_mut()).unwrap();
    // w_1 − w_0 = [0.15625, −0.21875, −0.1875].
    let norm = (0.15625f64.powi(2) + 0.21875f64.powi(2) + 0.1875f64.powi(2)).sqrt();
    let metric = |name: &str| {
        out.metrics
            .iter()
            .find(|m| m.name.as_str() == name)
            .map(|m| m.value)
    };
    assert_eq!(metric("clients"), Some(3.0));
    assert!((metric("update_norm").unwrap() - norm).abs() < 1e-12);
}

#[test]
fn a_single_client_is_copied() {
    let mut round = rounds()[2].clone();
    round.clients.truncate(1);
    let out = round.run(make("fedavg", "").as_mut()).unwrap();
    assert_eq!(out.global.as_slice(), round.clients[0].params.as_slice());
}

#[test]
fn fedprox_plans_the_proximal_term_and_averages_like_fedavg() {
    let mut fedprox = make("fedprox", r#"{"mu": 0.25}"#);
    let plan = fedprox.client_plan(3, &rounds()[0].global).unwrap();
    assert_eq!(
        plan,
        ClientPlan {
            prox_mu: 0.25,
            ..ClientPlan::plain()
        }
    );
    for (round, want) in rounds().iter().zip(FEDAVG) {
        let out = round.run(fedprox.as_mut()).unwrap();
        assert_close(&out.global, &want.map(f64::from), "fedprox global");
    }
}

#[test]
fn fedprox_defaults_to_openfedllms_mu() {
    let plan = make("fedprox", "").client_plan(0, &[0.0; 3]).unwrap();
    assert_eq!(plan.prox_mu, 0.01);
    assert!(plan.gradient_offset.is_empty() && plan.weight_offset.is_empty());
}

#[test]
fn fedavg_plans_plain_local_training() {
    assert_eq!(
        make("fedavg", "").client_plan(1, &[1.0; 3]).unwrap(),
        ClientPlan::plain()
    );
}

//! Tests of the `simpo` loss: values and gradients against the formula written out plainly here
//! (independent of the crate's helpers), finite differences, edge cases (no reference slice
//! at all), parameters, and the exported FFI entry points.

use abi_stable::std_types::RStr;
use fedpref_plugin_api::{
    testing::{
        self, error_of,
        loss::{
            assert_close, assert_empty_output, assert_gradient_close, assert_panics_become_errors,
            assert_rewards, OwnedBatch,
        },
        metric, GradientCheck,
    },
    DataNeeds, ErrorKind, LossFunction, LossSpec, Params, PluginError,
};

use crate::{fedpref_root_module, plugin, Simpo, SIMPO_SPEC};

/// Four pairs laid out out of order: (0, 3), (2, 5), (4, 1), (6, 7), with different lengths so
/// that length normalization matters; no reference log-probs (`reference` stays empty unless a
/// test fills it).
fn fixture() -> OwnedBatch {
    let mut data = OwnedBatch::four_pairs();
    data.reference.clear();
    data
}

const PAIRS: [(usize, usize); 4] = [(0, 3), (2, 5), (4, 1), (6, 7)];

fn sigma(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// (loss, gradient) of SimPO from the plain formula.
fn expected(beta: f64, ratio: f64, eps: f64, data: &OwnedBatch) -> (f64, Vec<f64>) {
    let avg = |i: usize| f64::from(data.policy[i]) / f64::from(data.n_tokens[i]);
    let p = PAIRS.len() as f64;
    let mut loss = 0.0;
    let mut grad = vec![0.0; data.policy.len()];
    for (c, r) in PAIRS {
        let x = beta * avg(c) - beta * avg(r) - ratio * beta;
        loss += (-(1.0 - eps) * sigma(x).ln() - eps * sigma(-x).ln()) / p;
        // d/dx: −(1−ε)(1 − σ(x)) + ε σ(x).
        let slope = -(1.0 - eps) * (1.0 - sigma(x)) + eps * sigma(x);
        grad[c] = slope * beta / f64::from(data.n_tokens[c]) / p;
        grad[r] = -slope * beta / f64::from(data.n_tokens[r]) / p;
    }
    (loss, grad)
}

fn simpo(beta: f64, gamma_beta_ratio: f64, label_smoothing: f64) -> Simpo {
    Simpo {
        beta,
        gamma_beta_ratio,
        label_smoothing,
    }
}

const SETTINGS: [(f64, f64, f64); 5] = [
    (2.0, 0.5, 0.0),
    (0.5, 0.0, 0.0),
    (2.5, 1.4, 0.0),
    (2.0, 0.5, 0.1),
    (1.0, 0.3, 0.3),
];

fn params_error(json: &str) -> PluginError {
    testing::params_error(json, Simpo::from_params)
}

#[test]
fn loss_matches_the_plain_formula() {
    let data = fixture();
    for (beta, ratio, eps) in SETTINGS {
        let out = simpo(beta, ratio, eps).evaluate(&data.batch()).unwrap();
        let (want, _) = expected(beta, ratio, eps, &data);
        assert_close(
            out.loss,
            want,
            1e-5,
            &format!("beta={beta} ratio={ratio} eps={eps} loss"),
        );
    }
}

#[test]
fn default_pair_worked_by_hand() {
    // Averages −1 (−4 over 4 tokens) and −2 (−6 over 3); β = 2, γ = 1: x = 2·1 − 1 = 1.
    let data = OwnedBatch::adjacent_pairs(vec![-4.0, -6.0], vec![], vec![4, 3]);
    let defaults = Simpo::from_params(&Params::parse("").unwrap()).unwrap();
    let out = defaults.evaluate(&data.batch()).unwrap();
    assert_close(out.loss, (1.0 + (-1f64).exp()).ln(), 1e-12, "loss");
    // dℓ/dx = −σ(−1); chosen gets ·β/4, rejected −·β/3.
    let s = 1.0 / (1.0 + 1f64.exp());
    assert_close(
        f64::from(out.grad_logp_policy[0]),
        -s * 2.0 / 4.0,
        1e-6,
        "grad[0]",
    );
    assert_close(
        f64::from(out.grad_logp_policy[1]),
        s * 2.0 / 3.0,
        1e-6,
        "grad[1]",
    );
}

#[test]
fn gradients_match_the_closed_form_derivative() {
    let data = fixture();
    for (beta, ratio, eps) in SETTINGS {
        let out = simpo(beta, ratio, eps).evaluate(&data.batch()).unwrap();
        let (_, want) = expected(beta, ratio, eps, &data);
        let what = format!("beta={beta} ratio={ratio} eps={eps}");
        assert_gradient_close(&out.grad_logp_policy, &want, 1e-5, &what);
        assert!(out.grad_kl_logp_policy.is_empty());
    }
}

#[test]
fn gradients_match_finite_differences() {
    let data = fixture();
    let check = GradientCheck::default();
    for (beta, ratio, eps) in SETTINGS {
        let what = format!("beta={beta} ratio={ratio} eps={eps}");
        check.assert_matches(&simpo(beta, ratio, eps), &data.batch(), &what);
    }
}

#[test]
fn works_without_reference_and_ignores_one() {
    let data = fixture();
    assert!(data.reference.is_empty());
    let loss = simpo(2.0, 0.5, 0.0);
    let without = loss.evaluate(&data.batch()).unwrap();
    let mut with = fixture();
    with.reference = vec![-100.0; 8];
    assert_eq!(loss.evaluate(&with.batch()).unwrap(), without);
}

#[test]
fn metrics_are_length_normalized_rewards() {
    let data = fixture();
    let beta = 2.0;
    let out = simpo(beta, 0.5, 0.0).evaluate(&data.batch()).unwrap();
    let reward = |i: usize| beta * f64::from(data.policy[i]) / f64::from(data.n_tokens[i]);
    let chosen = PAIRS.iter().map(|&(c, _)| reward(c)).sum::<f64>() / 4.0;
    let rejected = PAIRS.iter().map(|&(_, r)| reward(r)).sum::<f64>() / 4.0;
    assert_rewards(&out, chosen, rejected);
    // Per-token averages: only pair (6, 7) (−5/6 against −25/10) has the larger chosen reward;
    // pair (0, 3) would win on summed log-probs but loses per token (−2.5 against −2.25).
    assert_eq!(metric(&out, "rewards/accuracies"), 0.25);
    assert_eq!(out.metrics.len(), 4);
}

#[test]
fn empty_batch_gives_zero_loss_and_undefined_metrics() {
    let data = OwnedBatch::default();
    let out = simpo(2.0, 0.5, 0.1).evaluate(&data.batch()).unwrap();
    assert_empty_output(&out, 4);
}

#[test]
fn extreme_log_probs_give_finite_loss_and_gradients() {
    // Pair (0, 1): chosen average −1e4 against −1; pair (2, 3) the other way round.
    let data = OwnedBatch::adjacent_pairs(vec![-10000.0, -1.0, -1.0, -10000.0], vec![], vec![1; 4]);
    for (beta, ratio, eps) in SETTINGS {
        let out = simpo(beta, ratio, eps).evaluate(&data.batch()).unwrap();
        assert!(
            out.loss.is_finite(),
            "beta={beta} eps={eps}: loss {}",
            out.loss
        );
        assert!(
            out.grad_logp_policy.iter().all(|g| g.is_finite()),
            "{:?}",
            out.grad_logp_policy
        );
        assert!(out.metrics.iter().all(|m| m.value.is_finite()));
    }
    // β = 1, γ = 0: the losing pair costs 9999, the winning one nothing.
    let out = simpo(1.0, 0.0, 0.0).evaluate(&data.batch()).unwrap();
    assert_close(out.loss, 9999.0 / 2.0, 1e-12, "loss at ±1e4");
    assert_eq!(&out.grad_logp_policy[..], &[-0.5, 0.5, 0.0, 0.0]);
}

#[test]
fn spec_declares_paired_data_without_reference() {
    let want = LossSpec {
        data: DataNeeds::Paired,
        needs_reference: false,
        needs_kl_batch: false,
    };
    assert_eq!(SIMPO_SPEC, want);
    assert_eq!(simpo(2.0, 0.5, 0.0).spec(), want);
    let manifest = plugin().manifest();
    assert_eq!(manifest.name.as_str(), "fedpref-loss-simpo");
    assert_eq!(manifest.components.len(), 1);
    assert_eq!(manifest.components[0].name.as_str(), "simpo");
    assert_eq!(manifest.components[0].loss_spec.into_option(), Some(want));
}

#[test]
fn unpaired_and_inconsistent_inputs_are_refused() {
    let loss = simpo(2.0, 0.5, 0.0);
    let mut unpaired = fixture();
    unpaired.pair[2] = -1;
    unpaired.pair[5] = -1;
    let err = error_of(loss.evaluate(&unpaired.batch()));
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message.contains("sequence 2 (chosen) has no partner"),
        "{}",
        err.message
    );

    let mut no_tokens = fixture();
    no_tokens.n_tokens[7] = 0;
    let err = error_of(loss.evaluate(&no_tokens.batch()));
    assert!(err.message.contains("n_tokens[7] = 0"), "{}", err.message);

    let mut not_finite = fixture();
    not_finite.policy[4] = f32::NEG_INFINITY;
    let err = error_of(loss.evaluate(&not_finite.batch()));
    assert!(err.message.contains("logp_policy[4]"), "{}", err.message);
}

#[test]
fn trls_absolute_margin_is_the_ratio_times_beta() {
    // TRL's simpo_gamma = 0.5 at β = 2 is gamma_beta_ratio = 0.25 (the SimPO trainer's
    // dataclass default): on the pair above, x = 2·1 − 0.5 = 1.5, loss ln(1 + e^−1.5).
    let data = OwnedBatch::adjacent_pairs(vec![-4.0, -6.0], vec![], vec![4, 3]);
    let out = simpo(2.0, 0.25, 0.0).evaluate(&data.batch()).unwrap();
    assert_close(out.loss, 0.2014132779827524, 1e-12, "loss");
    assert_eq!(simpo(2.0, 0.25, 0.0).gamma(), 0.5);
}

#[test]
fn params_have_simpo_defaults() {
    // The SimPO authors' recommended starting ratio 0.5 with their β = 2: γ = 1.
    let defaults = Simpo::from_params(&Params::parse("").unwrap()).unwrap();
    assert_eq!(defaults, simpo(2.0, 0.5, 0.0));
    assert_eq!(defaults.gamma(), 1.0);
    let custom = Simpo::from_params(
        &Params::parse(r#"{"beta": 2.5, "gamma_beta_ratio": 0.55, "label_smoothing": 0.1}"#)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(custom, simpo(2.5, 0.55, 0.1));
}

#[test]
fn bad_params_are_rejected_with_the_expected_values() {
    let err = params_error(r#"{"gamma": 1.0}"#);
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(
        err.message.contains("unknown parameter `gamma`"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("gamma_beta_ratio"),
        "known keys are listed: {}",
        err.message
    );
    let err = params_error(r#"{"beta": 0}"#);
    assert!(
        err.message
            .contains("`beta` = 0 must be a finite number > 0"),
        "{}",
        err.message
    );
    let err = params_error(r#"{"gamma_beta_ratio": -0.5}"#);
    assert!(
        err.message.contains("`gamma_beta_ratio` = -0.5"),
        "{}",
        err.message
    );
    let err = params_error(r#"{"label_smoothing": 0.5}"#);
    assert!(err.message.contains("outside [0, 0.5)"), "{}", err.message);
}

#[test]
fn plugin_builds_and_evaluates_through_the_ffi_object() {
    let data = fixture();
    let object = plugin().new_loss("simpo", r#"{"beta":2.5}"#).unwrap();
    assert_eq!(object.spec(), SIMPO_SPEC);
    let through_ffi = object.evaluate(&data.batch()).into_result().unwrap();
    assert_eq!(
        through_ffi,
        simpo(2.5, 0.5, 0.0).evaluate(&data.batch()).unwrap()
    );
    let (want, _) = expected(2.5, 0.5, 0.0, &data);
    assert_close(through_ffi.loss, want, 1e-5, "loss through ffi");
}

#[test]
fn exported_root_module_entry_points_work_in_process() {
    let module = fedpref_root_module();
    let manifest = module.manifest()().into_result().unwrap();
    assert_eq!(manifest.components[0].name.as_str(), "simpo");
    let object = module.new_loss()(RStr::from("simpo"), RStr::from(""))
        .into_result()
        .unwrap();
    let data = fixture();
    let out = object.evaluate(&data.batch()).into_result().unwrap();
    let (want, _) = expected(2.0, 0.5, 0.0, &data);
    assert_close(out.loss, want, 1e-5, "default loss through the root module");
    // The simpo plugin does not provide dpo.
    let dpo = module.new_loss()(RStr::from("dpo"), RStr::from(""));
    assert_eq!(error_of(dpo).kind, ErrorKind::UnknownComponent);
}

#[test]
fn panics_become_panicked_errors() {
    assert_panics_become_errors(SIMPO_SPEC, &fixture().batch());
}

//! Tests of the `dpo` loss: values and gradients against the formulas written out plainly here
//! (independent of the crate's helpers), finite differences, edge cases, parameters, and the
//! exported FFI entry points.

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
    DataNeeds, ErrorKind, Label, LossFunction, LossSpec, Params, PluginError,
};

use crate::{fedpref_root_module, plugin, Dpo, DpoVariant, DPO_SPEC};

/// Four pairs laid out out of order: (0, 3), (2, 5), (4, 1), (6, 7). Their summed logits h are
/// 2.25, −1.25, 1.75 and 18, so with β = 0.3 the hinge sees both sides of its kink. Every value
/// has few fractional bits, so the finite-difference steps below are exact in f32.
fn fixture() -> OwnedBatch {
    OwnedBatch::four_pairs()
}

fn sigma(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The per-pair loss of TRL's `dpo_loss`, written out plainly (fine for moderate h).
fn expected_pair_loss(variant: &str, beta: f64, eps: f64, h: f64) -> f64 {
    match variant {
        "sigmoid" => -sigma(beta * h).ln(),
        "cdpo" => -(1.0 - eps) * sigma(beta * h).ln() - eps * sigma(-beta * h).ln(),
        "robust" => {
            (-(1.0 - eps) * sigma(beta * h).ln() + eps * sigma(-beta * h).ln()) / (1.0 - 2.0 * eps)
        }
        "hinge" => (1.0 - beta * h).max(0.0),
        "ipo" => (h - 1.0 / (2.0 * beta)).powi(2),
        other => panic!("no such variant {other}"),
    }
}

/// dℓ/dh of [`expected_pair_loss`], derived by hand.
fn expected_pair_slope(variant: &str, beta: f64, eps: f64, h: f64) -> f64 {
    let s = sigma(beta * h);
    match variant {
        "sigmoid" => -beta * (1.0 - s),
        "cdpo" => -(1.0 - eps) * beta * (1.0 - s) + eps * beta * s,
        "robust" => (-(1.0 - eps) * beta * (1.0 - s) - eps * beta * s) / (1.0 - 2.0 * eps),
        "hinge" => {
            if beta * h < 1.0 {
                -beta
            } else {
                0.0
            }
        }
        "ipo" => 2.0 * (h - 1.0 / (2.0 * beta)),
        other => panic!("no such variant {other}"),
    }
}

/// The per-sequence scale of the log-probs inside h: 1, or 1 / n_tokens for ipo.
fn scale(variant: &str, data: &OwnedBatch, i: usize) -> f64 {
    if variant == "ipo" {
        1.0 / f64::from(data.n_tokens[i])
    } else {
        1.0
    }
}

fn logit(variant: &str, data: &OwnedBatch, c: usize, r: usize) -> f64 {
    let ratio = |i: usize| f64::from(data.policy[i]) - f64::from(data.reference[i]);
    scale(variant, data, c) * ratio(c) - scale(variant, data, r) * ratio(r)
}

/// (loss, gradient) of the whole batch from the plain formulas.
fn expected(variant: &str, beta: f64, eps: f64, data: &OwnedBatch) -> (f64, Vec<f64>) {
    let pairs = data.pairs();
    let p = pairs.len() as f64;
    let mut loss = 0.0;
    let mut grad = vec![0.0; data.policy.len()];
    for &(c, r) in &pairs {
        let h = logit(variant, data, c, r);
        loss += expected_pair_loss(variant, beta, eps, h) / p;
        let slope = expected_pair_slope(variant, beta, eps, h);
        grad[c] = slope * scale(variant, data, c) / p;
        grad[r] = -slope * scale(variant, data, r) / p;
    }
    (loss, grad)
}

fn dpo(variant: DpoVariant, beta: f64) -> Dpo {
    let label_smoothing = if variant.uses_label_smoothing() {
        0.2
    } else {
        0.0
    };
    Dpo {
        variant,
        beta,
        label_smoothing,
    }
}

fn params_error(json: &str) -> PluginError {
    testing::params_error(json, Dpo::from_params)
}

#[test]
fn loss_matches_the_plain_formula_for_every_variant() {
    let data = fixture();
    for variant in DpoVariant::ALL {
        for beta in [0.1, 0.3, 2.0] {
            let loss = dpo(variant, beta);
            let out = loss.evaluate(&data.batch()).unwrap();
            let (want, _) = expected(variant.as_str(), beta, loss.label_smoothing, &data);
            assert_close(
                out.loss,
                want,
                1e-5,
                &format!("{} beta={beta} loss", variant.as_str()),
            );
        }
    }
}

#[test]
fn single_pair_values_worked_by_hand() {
    // h = (−10 − (−11)) − (−12 − (−11.5)) = 1 − (−0.5) = 1.5, β = 0.5: βh = 0.75.
    let data = OwnedBatch::adjacent_pairs(vec![-10.0, -12.0], vec![-11.0, -11.5], vec![2, 4]);
    let eval = |variant, eps| {
        Dpo {
            variant,
            beta: 0.5,
            label_smoothing: eps,
        }
        .evaluate(&data.batch())
        .unwrap()
        .loss
    };
    // ln(1 + e^−0.75) = 0.3868...
    assert_close(
        eval(DpoVariant::Sigmoid, 0.0),
        (1.0 + (-0.75f64).exp()).ln(),
        1e-12,
        "sigmoid",
    );
    assert_close(eval(DpoVariant::Hinge, 0.0), 0.25, 1e-12, "hinge");
    // ipo: h = 1/2 − (−0.5)/4 = 0.625; (0.625 − 1)² = 0.140625.
    assert_close(eval(DpoVariant::Ipo, 0.0), 0.140625, 1e-12, "ipo");
    // cdpo with ε = 0 is sigmoid; robust with ε = 0 too.
    assert_close(
        eval(DpoVariant::Cdpo, 0.0),
        eval(DpoVariant::Sigmoid, 0.0),
        1e-12,
        "cdpo eps=0",
    );
    assert_close(
        eval(DpoVariant::Robust, 0.0),
        eval(DpoVariant::Sigmoid, 0.0),
        1e-12,
        "robust eps=0",
    );
}

#[test]
fn gradients_match_the_closed_form_derivative_for_every_variant() {
    let data = fixture();
    for variant in DpoVariant::ALL {
        for beta in [0.1, 0.3, 2.0] {
            let loss = dpo(variant, beta);
            let out = loss.evaluate(&data.batch()).unwrap();
            let (_, want) = expected(variant.as_str(), beta, loss.label_smoothing, &data);
            let what = format!("{} beta={beta}", variant.as_str());
            assert_gradient_close(&out.grad_logp_policy, &want, 1e-5, &what);
            assert!(out.grad_kl_logp_policy.is_empty());
        }
    }
}

#[test]
fn gradients_match_finite_differences_for_every_variant() {
    let data = fixture();
    let check = GradientCheck {
        abs: 1e-6,
        ..GradientCheck::default()
    };
    for variant in DpoVariant::ALL {
        let fd_kl = check.assert_matches(&dpo(variant, 0.3), &data.batch(), variant.as_str());
        assert!(fd_kl.is_empty());
    }
}

#[test]
fn hinge_has_no_gradient_past_its_margin() {
    let data = fixture();
    let out = dpo(DpoVariant::Hinge, 0.3).evaluate(&data.batch()).unwrap();
    // Pair (6, 7) has βh = 5.4 > 1; the others are inside the margin and get ∓β / P.
    assert_eq!(out.grad_logp_policy[6], 0.0);
    assert_eq!(out.grad_logp_policy[7], 0.0);
    assert_close(
        f64::from(out.grad_logp_policy[0]),
        -0.3 / 4.0,
        1e-6,
        "grad[0]",
    );
    assert_close(
        f64::from(out.grad_logp_policy[3]),
        0.3 / 4.0,
        1e-6,
        "grad[3]",
    );
}

#[test]
fn ipo_averages_log_probs_per_token() {
    let mut data = fixture();
    let base = dpo(DpoVariant::Ipo, 0.3).evaluate(&data.batch()).unwrap();
    // Doubling a sequence's token count halves its share of h and of its gradient.
    data.n_tokens[0] *= 2;
    let doubled = dpo(DpoVariant::Ipo, 0.3).evaluate(&data.batch()).unwrap();
    assert_ne!(base.loss, doubled.loss);
    let (want, grad) = expected("ipo", 0.3, 0.0, &data);
    assert_close(doubled.loss, want, 1e-5, "ipo loss with 10 tokens");
    assert_close(
        f64::from(doubled.grad_logp_policy[0]),
        grad[0],
        1e-5,
        "ipo grad[0] with 10 tokens",
    );
}

#[test]
fn metrics_are_trl_reward_statistics() {
    let data = fixture();
    let beta = 0.3;
    let out = dpo(DpoVariant::Sigmoid, beta)
        .evaluate(&data.batch())
        .unwrap();
    let reward = |i: usize| beta * (f64::from(data.policy[i]) - f64::from(data.reference[i]));
    let pairs = [(0, 3), (2, 5), (4, 1), (6, 7)];
    let chosen: f64 = pairs.iter().map(|&(c, _)| reward(c)).sum::<f64>() / 4.0;
    let rejected: f64 = pairs.iter().map(|&(_, r)| reward(r)).sum::<f64>() / 4.0;
    assert_rewards(&out, chosen, rejected);
    // Pair (2, 5) has h < 0: its chosen reward is the smaller one.
    assert_eq!(metric(&out, "rewards/accuracies"), 0.75);
    assert_close(
        metric(&out, "logps/chosen"),
        (-12.5 - 10.0 - 30.5 - 5.0) / 4.0,
        1e-12,
        "logps/chosen",
    );
    assert_close(
        metric(&out, "logps/rejected"),
        (-15.75 - 9.5 - 20.25 - 25.0) / 4.0,
        1e-12,
        "logps/rejected",
    );
    // ipo reports the same summed-log-ratio rewards.
    let ipo = dpo(DpoVariant::Ipo, beta).evaluate(&data.batch()).unwrap();
    assert_eq!(
        metric(&ipo, "rewards/chosen"),
        metric(&out, "rewards/chosen")
    );
}

#[test]
fn empty_batch_gives_zero_loss_and_undefined_metrics() {
    let data = OwnedBatch::default();
    for variant in DpoVariant::ALL {
        let out = dpo(variant, 0.1).evaluate(&data.batch()).unwrap();
        assert_empty_output(&out, 6);
    }
}

#[test]
fn extreme_log_ratios_give_finite_loss_and_gradients() {
    // Pair (0, 1) has h = +1e4, pair (2, 3) has h = −1e4.
    let data = OwnedBatch::adjacent_pairs(
        vec![-1.0, -5.0, -10001.0, -3.0],
        vec![-10001.0, -5.0, -1.0, -3.0],
        vec![1; 4],
    );
    for variant in DpoVariant::ALL {
        for beta in [0.1, 1.0] {
            let out = dpo(variant, beta).evaluate(&data.batch()).unwrap();
            assert!(
                out.loss.is_finite(),
                "{} beta={beta}: loss {}",
                variant.as_str(),
                out.loss
            );
            assert!(
                out.grad_logp_policy.iter().all(|g| g.is_finite()),
                "{}: {:?}",
                variant.as_str(),
                out.grad_logp_policy
            );
            assert!(out.metrics.iter().all(|m| m.value.is_finite()));
        }
    }
    // With β = 1: sigmoid's loss is (≈0 + 1e4) / 2 and only the losing pair has a gradient.
    let out = dpo(DpoVariant::Sigmoid, 1.0)
        .evaluate(&data.batch())
        .unwrap();
    assert_close(out.loss, 5000.0, 1e-12, "sigmoid loss at ±1e4");
    assert_eq!(&out.grad_logp_policy[..], &[0.0, 0.0, -0.5, 0.5]);
    let out = dpo(DpoVariant::Ipo, 1.0).evaluate(&data.batch()).unwrap();
    assert_close(
        out.loss,
        (9999.5f64.powi(2) + 10000.5f64.powi(2)) / 2.0,
        1e-12,
        "ipo loss at ±1e4",
    );
}

#[test]
fn spec_declares_paired_data_with_reference_and_no_kl_batch() {
    let want = LossSpec {
        data: DataNeeds::Paired,
        needs_reference: true,
        needs_kl_batch: false,
    };
    assert_eq!(DPO_SPEC, want);
    for variant in DpoVariant::ALL {
        assert_eq!(dpo(variant, 0.1).spec(), want);
    }
    let manifest = plugin().manifest();
    assert_eq!(manifest.name.as_str(), "fedpref-loss-dpo");
    assert_eq!(manifest.components.len(), 1);
    assert_eq!(manifest.components[0].name.as_str(), "dpo");
    assert_eq!(manifest.components[0].loss_spec.into_option(), Some(want));
}

#[test]
fn unpaired_sequences_are_refused_naming_the_first() {
    let mut data = fixture();
    // Sequence 6 and 7 lose their pairing; 6 is the first unpaired index.
    data.pair[6] = -1;
    data.pair[7] = -1;
    let err = error_of(dpo(DpoVariant::Sigmoid, 0.1).evaluate(&data.batch()));
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message.contains("sequence 6 (chosen) has no partner"),
        "{}",
        err.message
    );
    assert!(err.message.contains("pair"), "{}", err.message);

    // A batch of rejected answers alone cannot be trained with DPO.
    let all_rejected = OwnedBatch {
        policy: vec![-1.0, -2.0],
        reference: vec![-1.5, -2.5],
        n_tokens: vec![1, 1],
        labels: vec![Label::Rejected, Label::Rejected],
        pair: vec![-1, -1],
        ..OwnedBatch::default()
    };
    let err = error_of(dpo(DpoVariant::Ipo, 0.1).evaluate(&all_rejected.batch()));
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message.contains("sequence 0 (rejected) has no partner"),
        "{}",
        err.message
    );
}

#[test]
fn inconsistent_inputs_are_refused() {
    let loss = dpo(DpoVariant::Sigmoid, 0.1);
    let mut no_reference = fixture();
    no_reference.reference.clear();
    let err = error_of(loss.evaluate(&no_reference.batch()));
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("logp_ref"), "{}", err.message);

    let mut not_finite = fixture();
    not_finite.policy[1] = f32::NAN;
    let err = error_of(loss.evaluate(&not_finite.batch()));
    assert!(err.message.contains("logp_policy[1]"), "{}", err.message);

    let mut no_tokens = fixture();
    no_tokens.n_tokens[3] = 0;
    let err = error_of(dpo(DpoVariant::Ipo, 0.1).evaluate(&no_tokens.batch()));
    assert!(err.message.contains("n_tokens[3] = 0"), "{}", err.message);
    assert!(error_of(loss.evaluate(&no_tokens.batch()))
        .message
        .contains("n_tokens[3] = 0"));
}

#[test]
fn params_have_trl_defaults() {
    let dpo = Dpo::from_params(&Params::parse("").unwrap()).unwrap();
    assert_eq!(
        dpo,
        Dpo {
            variant: DpoVariant::Sigmoid,
            beta: 0.1,
            label_smoothing: 0.0
        }
    );
    let robust = Dpo::from_params(
        &Params::parse(r#"{"variant": "robust", "beta": 0.5, "label_smoothing": 0.1}"#).unwrap(),
    )
    .unwrap();
    assert_eq!(
        robust,
        Dpo {
            variant: DpoVariant::Robust,
            beta: 0.5,
            label_smoothing: 0.1
        }
    );
    for name in DpoVariant::NAMES {
        let parsed =
            Dpo::from_params(&Params::parse(&format!(r#"{{"variant": "{name}"}}"#)).unwrap())
                .unwrap();
        assert_eq!(parsed.variant.as_str(), name);
    }
}

#[test]
fn bad_params_are_rejected_with_the_expected_values() {
    let err = params_error(r#"{"beta": 0.2, "betta": 1}"#);
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(
        err.message.contains("unknown parameter `betta`"),
        "{}",
        err.message
    );

    let err = params_error(r#"{"variant": "sigmod"}"#);
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(err.message.contains("\"sigmod\""), "{}", err.message);
    assert!(
        err.message.contains("sigmoid, robust, cdpo, hinge, ipo"),
        "{}",
        err.message
    );

    for beta in ["0", "-0.1"] {
        let err = params_error(&format!(r#"{{"beta": {beta}}}"#));
        assert!(
            err.message.contains("`beta`") && err.message.contains("> 0"),
            "{}",
            err.message
        );
    }
    let err = params_error(r#"{"beta": "high"}"#);
    assert!(
        err.message.contains("`beta` must be a number"),
        "{}",
        err.message
    );

    for eps in ["0.5", "-0.1"] {
        let err = params_error(&format!(
            r#"{{"variant": "cdpo", "label_smoothing": {eps}}}"#
        ));
        assert!(err.message.contains("outside [0, 0.5)"), "{}", err.message);
    }
    let err = params_error(r#"{"label_smoothing": 0.1}"#);
    assert!(
        err.message.contains("\"sigmoid\"") && err.message.contains("cdpo"),
        "{}",
        err.message
    );
}

#[test]
fn plugin_builds_and_evaluates_through_the_ffi_object() {
    let data = fixture();
    let object = plugin().new_loss("dpo", r#"{"beta":0.2}"#).unwrap();
    assert_eq!(object.spec(), DPO_SPEC);
    let through_ffi = object.evaluate(&data.batch()).into_result().unwrap();
    let direct = Dpo {
        variant: DpoVariant::Sigmoid,
        beta: 0.2,
        label_smoothing: 0.0,
    }
    .evaluate(&data.batch())
    .unwrap();
    assert_eq!(through_ffi, direct);
    let (want, _) = expected("sigmoid", 0.2, 0.0, &data);
    assert_close(through_ffi.loss, want, 1e-5, "loss through ffi");

    // Errors cross as values.
    let mut unpaired = fixture();
    unpaired.pair[0] = -1;
    unpaired.pair[3] = -1;
    assert_eq!(
        error_of(object.evaluate(&unpaired.batch())).kind,
        ErrorKind::InvalidInput
    );
    // The dpo plugin does not provide kto.
    assert_eq!(
        error_of(plugin().new_loss("kto", "")).kind,
        ErrorKind::UnknownComponent
    );
}

#[test]
fn exported_root_module_entry_points_work_in_process() {
    let module = fedpref_root_module();
    let manifest = module.manifest()().into_result().unwrap();
    assert_eq!(manifest.components[0].name.as_str(), "dpo");
    assert_eq!(
        manifest.api_version.as_str(),
        fedpref_plugin_api::API_VERSION
    );

    let object = module.new_loss()(
        RStr::from("dpo"),
        RStr::from(r#"{"variant": "hinge", "beta": 0.3}"#),
    )
    .into_result()
    .unwrap();
    let data = fixture();
    let out = object.evaluate(&data.batch()).into_result().unwrap();
    let (want, _) = expected("hinge", 0.3, 0.0, &data);
    assert_close(out.loss, want, 1e-5, "hinge loss through the root module");

    // A bad variant is refused.
    let bad = module.new_loss()(RStr::from("dpo"), RStr::from(r#"{"variant": "nope"}"#));
    assert_eq!(error_of(bad).kind, ErrorKind::InvalidParams);
}

#[test]
fn panics_become_panicked_errors() {
    assert_panics_become_errors(DPO_SPEC, &fixture().batch());
}

//! Tests of the `kto` and `ktor` losses: values and gradients against the formula written out
//! plainly here (independent of the crate's helpers), finite differences, the `"auto"` weight's
//! edge cases, the detached KL term, parameters, and the exported FFI entry points.

use abi_stable::std_types::RStr;
use fedpref_plugin_api::{
    testing::{
        self, error_of, finite_difference,
        loss::{
            assert_close, assert_gradient_close, assert_panics_become_errors, assert_rewards,
            OwnedBatch,
        },
        metric, GradientCheck,
    },
    DataNeeds, ErrorKind, Label, LossFunction, LossOutput, LossSpec, Params, PluginError,
};

use crate::{fedpref_root_module, plugin, DesirableWeight, Kto, KTOR_SPEC, KTO_SPEC};

/// Two desirable and four undesirable answers (0 and 1 are a pair, which KTO ignores) and a KL
/// batch whose log-ratios average 5/12. Values have few fractional bits so that the
/// finite-difference steps below are exact in f32.
fn fixture() -> OwnedBatch {
    use Label::{Chosen as C, Rejected as R};
    let mut data = OwnedBatch::singles(
        vec![-12.5, -20.25, -10.0, -15.75, -30.5, -9.5],
        vec![-13.0, -19.0, -9.5, -14.0, -31.0, -10.25],
        vec![C, R, C, R, R, R],
    );
    data.pair[0] = 1;
    data.pair[1] = 0;
    data.kl_policy = vec![-11.0, -17.5, -8.25];
    data.kl_ref = vec![-12.0, -17.0, -9.0];
    data
}

fn sigma(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// z0 written out: the clamped mean KL log-ratio, 0 without a KL batch.
fn expected_z0(data: &OwnedBatch) -> f64 {
    if data.kl_policy.is_empty() {
        return 0.0;
    }
    let mut sum = 0.0;
    for j in 0..data.kl_policy.len() {
        sum += f64::from(data.kl_policy[j]) - f64::from(data.kl_ref[j]);
    }
    let kl = sum / data.kl_policy.len() as f64;
    if kl > 0.0 {
        kl
    } else {
        0.0
    }
}

/// (loss, gradient) of TRL's `kto_loss` from the plain formula, with weights λ_D and λ_U.
fn expected(beta: f64, lambda_d: f64, lambda_u: f64, data: &OwnedBatch) -> (f64, Vec<f64>) {
    let z0 = expected_z0(data);
    let n = data.policy.len() as f64;
    let mut loss = 0.0;
    let mut grad = Vec::new();
    for i in 0..data.policy.len() {
        let r = f64::from(data.policy[i]) - f64::from(data.reference[i]);
        if data.labels[i] == Label::Chosen {
            let s = sigma(beta * (r - z0));
            loss += lambda_d * (1.0 - s) / n;
            grad.push(-lambda_d * beta * s * (1.0 - s) / n);
        } else {
            let s = sigma(beta * (z0 - r));
            loss += lambda_u * (1.0 - s) / n;
            grad.push(lambda_u * beta * s * (1.0 - s) / n);
        }
    }
    (loss, grad)
}

fn assert_matches_formula(loss: &Kto, lambda_d: f64, data: &OwnedBatch, what: &str) {
    let out = loss.evaluate(&data.batch()).unwrap();
    let (want, grad) = expected(loss.beta, lambda_d, loss.undesirable_weight, data);
    assert_close(out.loss, want, 1e-5, &format!("{what}: loss"));
    assert_gradient_close(&out.grad_logp_policy, &grad, 1e-5, what);
}

/// Equality of two outputs where NaN metrics ("not defined") count as equal.
fn assert_same(a: &LossOutput, b: &LossOutput) {
    assert_eq!(
        a.loss.to_bits(),
        b.loss.to_bits(),
        "loss {} vs {}",
        a.loss,
        b.loss
    );
    assert_eq!(a.grad_logp_policy, b.grad_logp_policy);
    assert_eq!(a.grad_kl_logp_policy, b.grad_kl_logp_policy);
    let bits = |o: &LossOutput| {
        o.metrics
            .iter()
            .map(|m| (m.name.to_string(), m.value.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(a), bits(b));
}

fn kto(beta: f64, desirable_weight: DesirableWeight, undesirable_weight: f64) -> Kto {
    Kto {
        beta,
        desirable_weight,
        undesirable_weight,
        spec: KTO_SPEC,
    }
}

fn params_error(json: &str) -> PluginError {
    testing::params_error(json, |params| Kto::from_params(params, KTO_SPEC))
}

#[test]
fn loss_and_gradients_match_the_plain_formula() {
    let data = fixture();
    for beta in [0.1, 0.5, 2.0] {
        for (lambda_d, lambda_u) in [(1.0, 1.0), (1.3, 0.7)] {
            for spec in [KTO_SPEC, KTOR_SPEC] {
                let loss = Kto {
                    beta,
                    desirable_weight: DesirableWeight::Fixed(lambda_d),
                    undesirable_weight: lambda_u,
                    spec,
                };
                let what = format!(
                    "{:?} beta={beta} weights=({lambda_d}, {lambda_u})",
                    spec.data
                );
                assert_matches_formula(&loss, lambda_d, &data, &what);
            }
        }
    }
}

#[test]
fn single_answers_worked_by_hand() {
    // No KL batch: z0 = 0. r = 2 (desirable) and r = −2 (undesirable), β = 0.5: both terms are
    // 1 − σ(1), so the mean is σ(−1) = 0.2689...
    let data = OwnedBatch::singles(
        vec![-8.0, -12.0],
        vec![-10.0, -10.0],
        vec![Label::Chosen, Label::Rejected],
    );
    let out = kto(0.5, DesirableWeight::Fixed(1.0), 1.0)
        .evaluate(&data.batch())
        .unwrap();
    assert_close(out.loss, 1.0 / (1.0 + 1f64.exp()), 1e-12, "loss");
    // d/dr of σ(−β r)/2 at r = 2 is −β σ(1)σ(−1)/2.
    let s = 1.0 / (1.0 + (-1f64).exp());
    assert_close(
        f64::from(out.grad_logp_policy[0]),
        -0.5 * s * (1.0 - s) / 2.0,
        1e-6,
        "grad[0]",
    );
    assert_close(
        f64::from(out.grad_logp_policy[1]),
        0.5 * s * (1.0 - s) / 2.0,
        1e-6,
        "grad[1]",
    );
    assert_eq!(metric(&out, "kl"), 0.0);
}

#[test]
fn gradients_match_finite_differences() {
    let data = fixture();
    let check = GradientCheck::default();
    for (beta, weight) in [
        (0.1, DesirableWeight::Fixed(1.0)),
        (0.5, DesirableWeight::Fixed(1.3)),
        (2.0, DesirableWeight::Auto),
    ] {
        check.assert_matches(
            &kto(beta, weight, 0.7),
            &data.batch(),
            &format!("beta={beta}"),
        );
    }
}

#[test]
fn kl_term_is_detached() {
    let data = fixture();
    let loss = kto(0.5, DesirableWeight::Fixed(1.0), 1.0);
    let out = loss.evaluate(&data.batch()).unwrap();
    assert!(out.grad_kl_logp_policy.is_empty());
    // The loss does depend on the KL batch through z0 (its finite difference is not zero); the
    // empty gradient is the deliberate stop-gradient of TRL, not a missing term.
    let (_, fd_kl) = finite_difference(&loss, &data.batch(), 1.0 / 64.0).unwrap();
    assert_eq!(fd_kl.len(), 3);
    assert!(fd_kl.iter().all(|g| g.abs() > 1e-4), "{fd_kl:?}");
}

#[test]
fn reference_point_is_the_clamped_mean_kl() {
    let data = fixture();
    let loss = kto(0.5, DesirableWeight::Fixed(1.0), 1.0);
    let out = loss.evaluate(&data.batch()).unwrap();
    assert_close(metric(&out, "kl"), 5.0 / 12.0, 1e-12, "kl");

    // A negative mean KL log-ratio clamps to 0, which is also what an empty KL batch gives.
    let mut negative = fixture();
    negative.kl_ref = vec![-10.0, -15.0, -8.0];
    let clamped = loss.evaluate(&negative.batch()).unwrap();
    assert_eq!(metric(&clamped, "kl"), 0.0);
    assert_matches_formula(&loss, 1.0, &negative, "negative kl");
    let mut no_kl = fixture();
    no_kl.kl_policy.clear();
    no_kl.kl_ref.clear();
    let without = loss.evaluate(&no_kl.batch()).unwrap();
    assert_eq!(metric(&without, "kl"), 0.0);
    assert_eq!(without.loss, clamped.loss);
    assert_ne!(without.loss, out.loss);
}

#[test]
fn pairs_are_ignored() {
    let paired = fixture();
    let mut single = fixture();
    single.pair = vec![-1; 6];
    let loss = kto(0.5, DesirableWeight::Auto, 1.0);
    assert_eq!(
        loss.evaluate(&paired.batch()).unwrap(),
        loss.evaluate(&single.batch()).unwrap()
    );
}

#[test]
fn auto_weight_reads_the_clients_counts_not_the_batchs() {
    // The batch holds 2 desirable and 4 undesirable answers (λ_D = 2 by its own counts); its
    // client holds 5 and 7: λ_D = 7/5.
    let mut data = fixture();
    data.client_counts = Some((5, 7));
    let auto = kto(0.5, DesirableWeight::Auto, 0.7);
    assert_matches_formula(&auto, 1.4, &data, "auto with a client of n_D = 5, n_U = 7");
    // A client without undesirable answers keeps unit weight, whatever the batch holds.
    data.client_counts = Some((6, 0));
    assert_matches_formula(&auto, 1.0, &data, "auto with a client of n_U = 0");
}

#[test]
fn auto_weight_balances_desirable_and_undesirable() {
    // The batch stands for its whole client: n_D = 2, n_U = 4, λ_D = 2.
    let data = fixture();
    let auto = kto(0.5, DesirableWeight::Auto, 0.7);
    assert_matches_formula(&auto, 2.0, &data, "auto with n_D = 2, n_U = 4");
    assert_eq!(
        auto.evaluate(&data.batch()).unwrap(),
        kto(0.5, DesirableWeight::Fixed(2.0), 0.7)
            .evaluate(&data.batch())
            .unwrap()
    );
    assert_eq!(DesirableWeight::Auto.resolve(3, 1), 1.0 / 3.0);
}

#[test]
fn auto_weight_without_desirable_answers_leaves_the_undesirable_terms() {
    let data = OwnedBatch::singles(
        vec![-3.0, -7.5, -2.25],
        vec![-4.0, -7.0, -3.0],
        vec![Label::Rejected; 3],
    );
    let auto = kto(0.5, DesirableWeight::Auto, 0.7);
    let out = auto.evaluate(&data.batch()).unwrap();
    // Loss = mean over the three of λ_U (1 − σ(β(0 − r))).
    let mut want = 0.0;
    for (p, r) in [(-3.0f64, -4.0f64), (-7.5, -7.0), (-2.25, -3.0)] {
        want += 0.7 * (1.0 - sigma(0.5 * (r - p))) / 3.0;
    }
    assert_close(out.loss, want, 1e-5, "all undesirable");
    // λ_D plays no part.
    assert_same(
        &out,
        &kto(0.5, DesirableWeight::Fixed(9.0), 0.7)
            .evaluate(&data.batch())
            .unwrap(),
    );
    assert_eq!(DesirableWeight::Auto.resolve(0, 3), 1.0);
    assert!(metric(&out, "rewards/chosen").is_nan());
    assert!(metric(&out, "rewards/margins").is_nan());
    assert!(metric(&out, "logps/chosen").is_nan());
    assert_eq!(metric(&out, "count/chosen"), 0.0);
    assert_eq!(metric(&out, "count/rejected"), 3.0);
}

#[test]
fn auto_weight_without_undesirable_answers_falls_back_to_unit_weight() {
    let data = OwnedBatch::singles(
        vec![-3.0, -7.5, -2.25],
        vec![-4.0, -7.0, -3.0],
        vec![Label::Chosen; 3],
    );
    let auto = kto(0.5, DesirableWeight::Auto, 0.7);
    assert_matches_formula(&auto, 1.0, &data, "auto with n_U = 0");
    assert_same(
        &auto.evaluate(&data.batch()).unwrap(),
        &kto(0.5, DesirableWeight::Fixed(1.0), 0.7)
            .evaluate(&data.batch())
            .unwrap(),
    );
    assert_eq!(DesirableWeight::Auto.resolve(3, 0), 1.0);
    let out = auto.evaluate(&data.batch()).unwrap();
    assert!(out.loss > 0.0);
    assert!(metric(&out, "rewards/rejected").is_nan());
    assert!(metric(&out, "logps/rejected").is_nan());
    assert_eq!(metric(&out, "count/chosen"), 3.0);
    assert_eq!(metric(&out, "count/rejected"), 0.0);
}

#[test]
fn metrics_are_trl_statistics() {
    let data = fixture();
    let beta = 0.5;
    let out = kto(beta, DesirableWeight::Fixed(1.0), 1.0)
        .evaluate(&data.batch())
        .unwrap();
    let reward = |i: usize| beta * (f64::from(data.policy[i]) - f64::from(data.reference[i]));
    let chosen = (reward(0) + reward(2)) / 2.0;
    let rejected = (reward(1) + reward(3) + reward(4) + reward(5)) / 4.0;
    assert_rewards(&out, chosen, rejected);
    assert_eq!(metric(&out, "count/chosen"), 2.0);
    assert_eq!(metric(&out, "count/rejected"), 4.0);
    assert_close(
        metric(&out, "logps/chosen"),
        (-12.5 - 10.0) / 2.0,
        1e-12,
        "logps/chosen",
    );
    assert_close(
        metric(&out, "logps/rejected"),
        (-20.25 - 15.75 - 30.5 - 9.5) / 4.0,
        1e-12,
        "logps/rejected",
    );
    assert_eq!(out.metrics.len(), 8);
}

#[test]
fn empty_batch_gives_zero_loss() {
    let mut data = OwnedBatch::singles(vec![], vec![], vec![]);
    let loss = kto(0.1, DesirableWeight::Auto, 1.0);
    let out = loss.evaluate(&data.batch()).unwrap();
    assert_eq!(out.loss, 0.0);
    assert!(out.grad_logp_policy.is_empty() && out.grad_kl_logp_policy.is_empty());
    assert!(metric(&out, "rewards/chosen").is_nan() && metric(&out, "rewards/rejected").is_nan());
    assert_eq!(
        metric(&out, "count/chosen") + metric(&out, "count/rejected"),
        0.0
    );
    assert_eq!(metric(&out, "kl"), 0.0);
    // The KL estimate is still reported when only the KL batch is present.
    data.kl_policy = vec![-1.0];
    data.kl_ref = vec![-3.0];
    assert_eq!(metric(&loss.evaluate(&data.batch()).unwrap(), "kl"), 2.0);
}

#[test]
fn extreme_log_ratios_give_finite_loss_and_gradients() {
    use Label::{Chosen as C, Rejected as R};
    // r = +1e4, −1e4 for a desirable and for an undesirable answer.
    let mut data = OwnedBatch::singles(
        vec![-1.0, -10001.0, -1.0, -10001.0],
        vec![-10001.0, -1.0, -10001.0, -1.0],
        vec![C, C, R, R],
    );
    for beta in [0.1, 1.0] {
        for kl in [0.0f32, 1e4, -1e4] {
            data.kl_policy = vec![kl - 1.0];
            data.kl_ref = vec![-1.0];
            let out = kto(beta, DesirableWeight::Auto, 1.0)
                .evaluate(&data.batch())
                .unwrap();
            assert!(
                out.loss.is_finite(),
                "beta={beta} kl={kl}: loss {}",
                out.loss
            );
            assert!(
                out.grad_logp_policy.iter().all(|g| g.is_finite()),
                "{:?}",
                out.grad_logp_policy
            );
            assert!(
                out.metrics.iter().all(|m| m.value.is_finite()),
                "{:?}",
                out.metrics
            );
        }
    }
    // z0 = 0, β = 1: the desirable answer with r = −1e4 and the undesirable one with r = +1e4
    // lose fully (1 each), the others not at all; every term is saturated, so no gradient.
    data.kl_policy.clear();
    data.kl_ref.clear();
    let out = kto(1.0, DesirableWeight::Fixed(1.0), 1.0)
        .evaluate(&data.batch())
        .unwrap();
    assert_eq!(out.loss, 0.5);
    assert!(
        out.grad_logp_policy.iter().all(|&g| g == 0.0),
        "{:?}",
        out.grad_logp_policy
    );
}

#[test]
fn specs_declare_unpaired_and_redistributed_data_with_reference_and_kl_batch() {
    let kto_spec = LossSpec {
        data: DataNeeds::Unpaired,
        needs_reference: true,
        needs_kl_batch: true,
    };
    let ktor_spec = LossSpec {
        data: DataNeeds::Redistributed,
        needs_reference: true,
        needs_kl_batch: true,
    };
    assert_eq!(KTO_SPEC, kto_spec);
    assert_eq!(KTOR_SPEC, ktor_spec);
    let manifest = plugin().manifest();
    assert_eq!(manifest.name.as_str(), "fedpref-loss-kto");
    let specs: Vec<(&str, Option<LossSpec>)> = manifest
        .components
        .iter()
        .map(|c| (c.name.as_str(), c.loss_spec.into_option()))
        .collect();
    assert_eq!(
        specs,
        vec![("kto", Some(kto_spec)), ("ktor", Some(ktor_spec))]
    );
    let plugin = plugin();
    assert_eq!(plugin.new_loss("kto", "").unwrap().spec(), kto_spec);
    assert_eq!(plugin.new_loss("ktor", "").unwrap().spec(), ktor_spec);
}

#[test]
fn inconsistent_inputs_are_refused() {
    let loss = kto(0.1, DesirableWeight::Fixed(1.0), 1.0);
    let mut kl_mismatch = fixture();
    kl_mismatch.kl_ref.pop();
    let err = error_of(loss.evaluate(&kl_mismatch.batch()));
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("kl_logp_ref"), "{}", err.message);

    let mut no_reference = fixture();
    no_reference.reference.clear();
    let err = error_of(loss.evaluate(&no_reference.batch()));
    assert!(err.message.contains("logp_ref"), "{}", err.message);

    let mut not_finite = fixture();
    not_finite.kl_policy[2] = f32::INFINITY;
    let err = error_of(loss.evaluate(&not_finite.batch()));
    assert!(err.message.contains("kl_logp_policy[2]"), "{}", err.message);
}

#[test]
fn params_have_trl_defaults_and_accept_auto() {
    let defaults = Kto::from_params(&Params::parse("").unwrap(), KTO_SPEC).unwrap();
    assert_eq!(defaults, kto(0.1, DesirableWeight::Fixed(1.0), 1.0));
    let auto = Kto::from_params(
        &Params::parse(r#"{"beta": 0.3, "desirable_weight": "auto", "undesirable_weight": 0.5}"#)
            .unwrap(),
        KTOR_SPEC,
    )
    .unwrap();
    assert_eq!(
        auto,
        Kto {
            beta: 0.3,
            desirable_weight: DesirableWeight::Auto,
            undesirable_weight: 0.5,
            spec: KTOR_SPEC
        }
    );
    let fixed = Kto::from_params(
        &Params::parse(r#"{"desirable_weight": 1.33}"#).unwrap(),
        KTO_SPEC,
    )
    .unwrap();
    assert_eq!(fixed.desirable_weight, DesirableWeight::Fixed(1.33));
}

#[test]
fn bad_params_are_rejected_with_the_expected_values() {
    let err = params_error(r#"{"beta": 0.2, "desirable_wieght": 1}"#);
    assert_eq!(err.kind, ErrorKind::InvalidParams);
    assert!(
        err.message.contains("unknown parameter `desirable_wieght`"),
        "{}",
        err.message
    );

    let err = params_error(r#"{"desirable_weight": "balanced"}"#);
    assert!(
        err.message.contains("number > 0 or \"auto\"") && err.message.contains("balanced"),
        "{}",
        err.message
    );
    for json in [
        r#"{"desirable_weight": 0}"#,
        r#"{"undesirable_weight": -1}"#,
        r#"{"beta": 0}"#,
    ] {
        let err = params_error(json);
        assert_eq!(err.kind, ErrorKind::InvalidParams);
        assert!(
            err.message.contains("must be a finite number > 0"),
            "{json}: {}",
            err.message
        );
    }
    let err = params_error(r#"{"undesirable_weight": "auto"}"#);
    assert!(
        err.message
            .contains("`undesirable_weight` must be a number"),
        "{}",
        err.message
    );
}

#[test]
fn plugin_builds_and_evaluates_through_the_ffi_object() {
    let data = fixture();
    let object = plugin().new_loss("kto", r#"{"beta":0.2}"#).unwrap();
    let through_ffi = object.evaluate(&data.batch()).into_result().unwrap();
    assert_eq!(
        through_ffi,
        kto(0.2, DesirableWeight::Fixed(1.0), 1.0)
            .evaluate(&data.batch())
            .unwrap()
    );
    let (want, _) = expected(0.2, 1.0, 1.0, &data);
    assert_close(through_ffi.loss, want, 1e-5, "loss through ffi");

    let mut bad = fixture();
    bad.labels.pop();
    assert_eq!(
        error_of(object.evaluate(&bad.batch())).kind,
        ErrorKind::InvalidInput
    );
    // The kto plugin does not provide dpo.
    assert_eq!(
        error_of(plugin().new_loss("dpo", "")).kind,
        ErrorKind::UnknownComponent
    );
}

#[test]
fn exported_root_module_entry_points_work_in_process() {
    let module = fedpref_root_module();
    let manifest = module.manifest()().into_result().unwrap();
    assert_eq!(manifest.components.len(), 2);
    let object = module.new_loss()(
        RStr::from("ktor"),
        RStr::from(r#"{"desirable_weight": "auto"}"#),
    )
    .into_result()
    .unwrap();
    assert_eq!(object.spec(), KTOR_SPEC);
    let data = fixture();
    let out = object.evaluate(&data.batch()).into_result().unwrap();
    let (want, _) = expected(0.1, 2.0, 1.0, &data);
    assert_close(
        out.loss,
        want,
        1e-5,
        "ktor auto loss through the root module",
    );
    // A negative beta is refused.
    let negative = module.new_loss()(RStr::from("kto"), RStr::from(r#"{"beta": -1}"#));
    assert_eq!(error_of(negative).kind, ErrorKind::InvalidParams);
}

#[test]
fn panics_become_panicked_errors() {
    assert_panics_become_errors(KTO_SPEC, &fixture().batch());
}

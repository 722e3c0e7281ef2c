//! FedAdagrad, FedYogi and FedAdam, published and OpenFedLLM's, by hand over three rounds with
//! both moments checked after each.

use fedpref_plugin_api::Params;

use super::{assert_close, rounds, Client, Round};
use crate::{Adaptivity, FedAdaptive};

fn adaptive(adaptivity: Adaptivity, params: &str) -> FedAdaptive {
    FedAdaptive::from_params(adaptivity, &Params::parse(params).unwrap()).unwrap()
}

/// `(w_{t+1}, m_t, v_t)` after each of the three rounds.
type Expected = [([f64; 3], [f64; 3], [f64; 3]); 3];

#[track_caller]
fn check(mut aggregator: FedAdaptive, want: Expected, what: &str) {
    for (round, (global, m, v)) in rounds().iter().zip(want) {
        let out = round.run(&mut aggregator).unwrap();
        let r = round.round;
        assert_close(&out.global, &global, &format!("{what} round {r} global"));
        assert_close(
            aggregator.first_moment(),
            &m,
            &format!("{what} round {r} m"),
        );
        assert_close(
            aggregator.second_moment(),
            &v,
            &format!("{what} round {r} v"),
        );
    }
}

/// η = τ = 0.1, β1 = 0.5, β2 = 0.9: large enough steps that every difference between the
/// rules shows in the sixth digit.
const VISIBLE: &str = r#"{"server_lr": 0.1, "tau": 0.1, "beta1": 0.5, "beta2": 0.9}"#;
const VISIBLE_OPENFEDLLM: &str =
    r#"{"server_lr": 0.1, "tau": 0.1, "beta1": 0.5, "beta2": 0.9, "variant": "openfedllm"}"#;

// Example-weighted deltas (published default): Δ_0 = [0.15625, −0.21875, −0.1875],
// Δ_1 = [0.125, 0.21875, −0.0625], Δ_2 = [0.3125, 0.25, −0.3125].
// Uniform deltas (OpenFedLLM default): Δ_0 = [1/6, −1/12, 0], Δ_1 = [1/6, 1/8, −1/24],
// Δ_2 = [1/8, 0, −1/8].

#[test]
fn fedadam_published() {
    // Round 0, coordinate 0 by hand: m = 0.5 · 0.15625 = 0.078125;
    // v = 0.9 · 0.1² + 0.1 · 0.15625² = 0.01144140625; w = 0.5 + 0.1 · m / (√v + 0.1) = 0.537748…
    check(
        adaptive(Adaptivity::Adam, VISIBLE),
        [
            (
                [0.5377480178915048, -1.0503081260489109, 1.9557518477901035],
                [0.078125, -0.109375, -0.09375],
                [
                    0.011441406250000003,
                    0.013785156250000001,
                    0.012515625000000002,
                ],
            ),
            (
                [0.6736171659895781, -1.1013377927925745, 1.8374321153671764],
                [0.1015625, 0.0546875, -0.078125],
                [0.011859765625000003, 0.017191796875, 0.011654687500000004],
            ),
            (
                [0.8352097997289464, -0.9384185915832506, 1.6693987732690232],
                [0.20703125, 0.15234375, -0.1953125],
                [0.0204394140625, 0.021722617187499998, 0.02025484375],
            ),
        ],
        "fedadam",
    );
}

#[test]
fn fedadam_openfedllm_squares_the_momentum() {
    // Round 0: m = Δ_0 (no (1 − β1) on the first round), v = 0.9 · 0.01 + 0.1 · m²:
    // coordinate 2 has Δ = 0, so v = 0.009 and w stays 2. Round 1: m = 0.5 m_0 + 0.5 Δ_1 and
    // v = 0.9 v_0 + 0.1 m_1² (the paper would use Δ_1²).
    check(
        adaptive(Adaptivity::Adam, VISIBLE_OPENFEDLLM),
        [
            (
                [0.5799262872562316, -1.0419899113196491, 2.0],
                [0.16666666666666666, -0.08333333333333333, 0.0],
                [
                    0.01177777777777778,
                    0.009694444444444447,
                    0.009000000000000003,
                ],
            ),
            (
                [0.7022813017400484, -1.1142411897171702, 1.864048966966033],
                [
                    0.16666666666666669,
                    0.020833333333333336,
                    -0.02083333333333333,
                ],
                [
                    0.01337777777777778,
                    0.00876840277777778,
                    0.00814340277777778,
                ],
            ),
            (
                [0.8165832363140377, -0.9944854876632235, 1.7113503987606746],
                [
                    0.14583333333333334,
                    0.010416666666666668,
                    -0.07291666666666666,
                ],
                [
                    0.014166736111111113,
                    0.007902413194444445,
                    0.00786074652777778,
                ],
            ),
        ],
        "fedadam openfedllm",
    );
}

#[test]
fn fedadam_defaults_are_the_published_ones() {
    // η = τ = 1e-3, β1 = 0.9, β2 = 0.99, v_{−1} = τ² = 1e-6, example weighting.
    check(
        adaptive(Adaptivity::Adam, ""),
        [
            (
                [0.5009380638918352, -1.0009553395934236, 1.999051899354976],
                [
                    0.015624999999999997,
                    -0.021874999999999995,
                    -0.018749999999999996,
                ],
                [
                    0.0002451306250000002,
                    0.0004795056250000004,
                    0.0003525525000000003,
                ],
            ),
            (
                [0.6262664963363198, -1.1249313711741407, 1.8738828495224207],
                [
                    0.026562499999999996,
                    0.0021874999999999985,
                    -0.023124999999999996,
                ],
                [
                    0.0003989293187500003,
                    0.0009532261937500008,
                    0.0003880894750000003,
                ],
            ),
            (
                [0.7514501902627293, -0.9993358553446349, 1.74862590706133],
                [
                    0.05515624999999999,
                    0.026968749999999993,
                    -0.05206249999999999,
                ],
                [
                    0.0013715025255625012,
                    0.0015686939318125012,
                    0.0013607710802500013,
                ],
            ),
        ],
        "fedadam defaults",
    );
}

/// β1 = 0.5, the authors' fork's default; the other values as upstream's. Computed in float64 by
/// a short script of OpenFedLLM's formulas (`fed_global.py`) over the fixture; rounds 1 and 2
/// differ from upstream's β1 = 0.9 below.
#[test]
fn fedadam_openfedllm_defaults() {
    check(
        adaptive(Adaptivity::Adam, r#"{"variant": "openfedllm"}"#),
        [
            (
                [0.5094181432037663, -1.0088723053648883, 2.0],
                [0.16666666666666666, -0.08333333333333333, 0.0],
                [0.00027876777777777797, 7.04344444444445e-05, 9.9e-07],
            ),
            (
                [0.6317938306993212, -1.1228313102748004, 1.8686994590982284],
                [
                    0.16666666666666666,
                    0.020833333333333336,
                    -0.020833333333333332,
                ],
                [
                    0.0005537578777777782,
                    7.407037777777784e-05,
                    5.320377777777781e-06,
                ],
            ),
            (
                [0.7551018672927147, -0.9989179060948268, 1.7415647853073084],
                [
                    0.14583333333333331,
                    0.010416666666666668,
                    -0.07291666666666667,
                ],
                [
                    0.0007608939101111116,
                    7.441474344444451e-05,
                    5.843557677777784e-05,
                ],
            ),
        ],
        "fedadam openfedllm defaults",
    );
}

#[test]
fn fedadam_openfedllm_with_upstreams_beta1() {
    check(
        adaptive(
            Adaptivity::Adam,
            r#"{"variant": "openfedllm", "beta1": 0.9}"#,
        ),
        [
            (
                [0.5094181432037663, -1.0088723053648883, 2.0],
                [0.16666666666666666, -0.08333333333333333, 0.0],
                [0.00027876777777777797, 7.04344444444445e-05, 9.9e-07],
            ),
            (
                [0.6317938306993212, -1.1304678899113814, 1.8729911056930146],
                [0.16666666666666666, -0.0625, -0.004166666666666665],
                [
                    0.0005537578777777782,
                    0.0001087926000000001,
                    1.153711111111111e-06,
                ],
            ),
            (
                [0.7555083671322571, -1.0043930002280559, 1.744482064317798],
                [0.16249999999999998, -0.05625, -0.016249999999999997],
                [
                    0.0008122827990000006,
                    0.00013934529900000014,
                    3.7827990000000015e-06,
                ],
            ),
        ],
        "fedadam openfedllm β1 = 0.9",
    );
}

#[test]
fn fedyogi_published() {
    // Round 0, coordinate 0: Δ² = 0.0244140625 > v_{−1} = 0.01, so sign = −1 and
    // v = 0.01 + 0.1 · Δ² = 0.01244140625.
    check(
        adaptive(Adaptivity::Yogi, VISIBLE),
        [
            (
                [0.5369313659514949, -1.049358235119196, 1.9566487460376953],
                [0.078125, -0.109375, -0.09375],
                [0.012441406250000002, 0.01478515625, 0.013515625000000002],
            ),
            (
                [0.6715161597242675, -1.102203466837145, 1.83858901906526],
                [0.1015625, 0.0546875, -0.078125],
                [0.014003906250000002, 0.0195703125, 0.013125000000000001],
            ),
            (
                [0.8314526625276002, -0.9415606650755817, 1.6722780599070037],
                [0.20703125, 0.15234375, -0.1953125],
                [0.02376953125, 0.025820312499999998, 0.022890624999999998],
            ),
        ],
        "fedyogi",
    );
}

#[test]
fn fedyogi_openfedllm() {
    check(
        adaptive(Adaptivity::Yogi, VISIBLE_OPENFEDLLM),
        [
            (
                [0.5782329983125268, -1.0424163097209775, 2.0],
                [0.16666666666666666, -0.08333333333333333, 0.0],
                [
                    0.012777777777777779,
                    0.009305555555555558,
                    0.010000000000000002,
                ],
            ),
            (
                [0.6991657386773942, -1.114383752057673, 1.864572005931219],
                [
                    0.16666666666666669,
                    0.020833333333333336,
                    -0.02083333333333333,
                ],
                [
                    0.015555555555555557,
                    0.00926215277777778,
                    0.009956597222222224,
                ],
            ),
            (
                [0.8125961893347585, -0.9946903503013195, 1.7130018623815215],
                [
                    0.14583333333333334,
                    0.010416666666666668,
                    -0.07291666666666666,
                ],
                [
                    0.01768229166666667,
                    0.009251302083333336,
                    0.009424913194444447,
                ],
            ),
        ],
        "fedyogi openfedllm",
    );
}

#[test]
fn fedyogi_sign_of_zero_leaves_v_unchanged() {
    // τ = 0.5 so v_{−1} = 0.25; β1 = 0 so m = Δ; β2 = 0.5; one client from w = 0.
    // Δ = 0.5: Δ² = v, sign 0, v stays 0.25. Δ = 0.25: Δ² < v, v = 0.25 − 0.5 · 0.0625.
    // Δ = 1: Δ² > v, v = 0.25 + 0.5 · 1.
    let mut yogi = adaptive(
        Adaptivity::Yogi,
        r#"{"server_lr": 1.0, "tau": 0.5, "beta1": 0.0, "beta2": 0.5}"#,
    );
    let round = Round {
        round: 0,
        n_clients: 1,
        global: vec![0.0; 3],
        clients: vec![Client {
            client: 0,
            params: vec![0.5, 0.25, 1.0],
            n_examples: 1,
            local_steps: 1,
            learning_rate: 0.1,
        }],
    };
    let out = round.run(&mut yogi).unwrap();
    let v = [0.25, 0.21875, 0.75];
    assert_close(yogi.second_moment(), &v, "yogi v");
    let w: Vec<f64> = [0.5f64, 0.25, 1.0]
        .iter()
        .zip(v)
        .map(|(d, v)| d / (f64::sqrt(v) + 0.5))
        .collect();
    assert_close(&out.global, &w, "yogi global");
    assert_eq!(out.global[0], 0.5, "0.5 / (0.5 + 0.5)");
}

#[test]
fn fedadagrad_published_defaults_to_no_momentum() {
    // β1 = 0: m = Δ; v = 0.01 + Σ Δ²: round 0 coordinate 0 v = 0.01 + 0.0244140625.
    check(
        adaptive(Adaptivity::Adagrad, r#"{"server_lr": 0.1, "tau": 0.1}"#),
        [
            (
                [0.5547265766372467, -1.0642393223136792, 1.94],
                [0.15625, -0.21875, -0.1875],
                [0.0344140625, 0.0578515625, 0.04515625],
            ),
            (
                [0.6636167030953104, -1.0735439611220574, 1.8555599097066613],
                [0.125, 0.21875, -0.0625],
                [0.0500390625, 0.10570312500000001, 0.0490625],
            ),
            (
                [0.8145245908632239, -0.9509924751939836, 1.6853054088797454],
                [0.3125, 0.25, -0.3125],
                [0.1476953125, 0.168203125, 0.14671875],
            ),
        ],
        "fedadagrad",
    );
}

#[test]
fn fedadagrad_published_with_momentum() {
    // Algorithm 2 allows β1 for FedAdagrad too; v still accumulates Δ², not m².
    check(
        adaptive(
            Adaptivity::Adagrad,
            r#"{"server_lr": 0.1, "tau": 0.1, "beta1": 0.5}"#,
        ),
        [
            (
                [0.5273632883186233, -1.0321196611568395, 1.97],
                [0.078125, -0.109375, -0.09375],
                [0.0344140625, 0.0578515625, 0.04515625],
            ),
            (
                [0.6563760712649397, -1.1121359902805144, 1.8506998871333267],
                [0.1015625, 0.0546875, -0.078125],
                [0.0500390625, 0.10570312500000001, 0.0490625],
            ),
            (
                [0.7927475414468859, -0.9701360395713338, 1.7095658805498408],
                [0.20703125, 0.15234375, -0.1953125],
                [0.1476953125, 0.168203125, 0.14671875],
            ),
        ],
        "fedadagrad β1=0.5",
    );
}

#[test]
fn fedadagrad_openfedllm_averages_uniformly() {
    check(
        adaptive(
            Adaptivity::Adagrad,
            r#"{"server_lr": 0.1, "tau": 0.1, "variant": "openfedllm"}"#,
        ),
        [
            (
                [0.556619037896906, -1.036204993518133, 2.0],
                [0.16666666666666666, -0.08333333333333333, 0.0],
                [
                    0.03777777777777778,
                    0.016944444444444446,
                    0.010000000000000002,
                ],
            ),
            (
                [0.6718114574786861, -1.0804319638721183, 1.855],
                [0.16666666666666669, 0.125, -0.04166666666666666],
                [
                    0.06555555555555556,
                    0.03256944444444444,
                    0.011736111111111112,
                ],
            ),
            (
                [0.7824741102359378, -1.0, 1.7029034005523247],
                [0.125, 0.0, -0.125],
                [
                    0.08118055555555556,
                    0.03256944444444444,
                    0.027361111111111114,
                ],
            ),
        ],
        "fedadagrad openfedllm",
    );
}

#[test]
fn zero_deltas_leave_the_model_unchanged_without_nan() {
    for adaptivity in [Adaptivity::Adagrad, Adaptivity::Yogi, Adaptivity::Adam] {
        for params in ["", r#"{"variant": "openfedllm"}"#] {
            let mut aggregator = adaptive(adaptivity, params);
            let mut round = rounds()[0].clone();
            for c in &mut round.clients {
                c.params = round.global.clone();
            }
            for _ in 0..2 {
                let out = round.run(&mut aggregator).unwrap();
                assert_eq!(
                    out.global.as_slice(),
                    round.global.as_slice(),
                    "{adaptivity:?} {params}"
                );
                assert!(aggregator
                    .second_moment()
                    .iter()
                    .all(|v| v.is_finite() && *v > 0.0));
            }
        }
    }
}

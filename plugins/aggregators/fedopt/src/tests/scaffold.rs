//! SCAFFOLD option II by hand: the control variates of every client, the corrections handed to
//! the clients (after the optimizer step by default, through the gradient as published), and the
//! server average, over three rounds; and OpenFedLLM's round after two clients' two local steps.

use fedpref_plugin_api::{
    state::StateWriter,
    testing::aggregation::{Client, Round},
    AggregatorFunction, ClientPlan, Params,
};

use super::{assert_close, rounds};
use crate::Scaffold;

fn scaffold(params: &str) -> Scaffold {
    Scaffold::from_params(&Params::parse(params).unwrap()).unwrap()
}

/// One round's expectations: the offsets `c − c_i` handed out before it, then `w_{t+1}`, `c`
/// and every client's `c_i` after it (`None` = never trained, zero).
struct Expected {
    offsets: Vec<(u32, [f64; 3])>,
    global: [f64; 3],
    control: [f64; 3],
    client_controls: [Option<[f64; 3]>; 4],
}

/// The control variates do not depend on `server_lr` or the weighting, only the global does.
///
/// Round 0 (c = c_i = 0), `(w_0 − y_i) / (K_i η_l)`: client 0: [−0.5, −0.5, 0] / 0.5 = [−1, −1, 0];
/// client 2: [0.25, 0.5, −0.5] / 0.5 = [0.5, 1, −1]; client 3: [−0.25, 0.25, 0.5] / 2 =
/// [−0.125, 0.125, 0.25]; c = (1/4) Σ Δc_i = [−0.15625, 0.03125, −0.1875].
/// Round 1: client 0: c_0⁺ = c_0 − c + ([0.625, −1.125, 1.875] − [0.5, −1, 2.25]) / 0.5
/// = [−1 + 0.15625 + 0.25, −1 − 0.03125 − 0.25, 0 + 0.1875 − 0.75] = [−0.59375, −1.28125, −0.5625].
fn expected(globals: [[f64; 3]; 3]) -> Vec<Expected> {
    vec![
        Expected {
            offsets: vec![],
            global: globals[0],
            control: [-0.15625, 0.03125, -0.1875],
            client_controls: [
                Some([-1.0, -1.0, 0.0]),
                None,
                Some([0.5, 1.0, -1.0]),
                Some([-0.125, 0.125, 0.25]),
            ],
        },
        Expected {
            offsets: vec![
                (0, [0.84375, 1.03125, -0.1875]),
                (1, [-0.15625, 0.03125, -0.1875]),
                (3, [-0.03125, -0.09375, -0.4375]),
            ],
            global: globals[1],
            control: [-0.1953125, -0.0390625, -0.125],
            client_controls: [
                Some([-0.59375, -1.28125, -0.5625]),
                Some([-0.59375, 0.21875, 0.4375]),
                Some([0.5, 1.0, -1.0]),
                Some([-0.09375, -0.09375, 0.625]),
            ],
        },
        Expected {
            offsets: vec![
                (2, [-0.6953125, -1.0390625, 0.875]),
                (3, [-0.1015625, 0.0546875, -0.75]),
            ],
            global: globals[2],
            control: [-0.03515625, 0.16796875, -0.125],
            client_controls: [
                Some([-0.59375, -1.28125, -0.5625]),
                Some([-0.59375, 0.21875, 0.4375]),
                Some([1.1953125, 2.0390625, -1.375]),
                Some([-0.1484375, -0.3046875, 1.0]),
            ],
        },
    ]
}

/// The offset `plan` applies and the one it leaves empty, by where `params` puts the correction.
fn offsets<'a>(plan: &'a ClientPlan, params: &str) -> (&'a [f32], &'a [f32]) {
    let (weights, gradient) = (
        plan.weight_offset.as_slice(),
        plan.gradient_offset.as_slice(),
    );
    if params.contains("\"gradient\"") {
        (gradient, weights)
    } else {
        (weights, gradient)
    }
}

#[track_caller]
fn check(params: &str, globals: [[f64; 3]; 3], what: &str) {
    let mut aggregator = scaffold(params);
    for (round, want) in rounds().iter().zip(expected(globals)) {
        let r = round.round;
        for c in &round.clients {
            let plan = aggregator.client_plan(c.client, &round.global).unwrap();
            assert_eq!(plan.prox_mu, 0.0);
            let (offset, other) = offsets(&plan, params);
            assert!(other.is_empty(), "{what}: one form of the correction only");
            match want.offsets.iter().find(|(client, _)| *client == c.client) {
                Some((_, want)) => assert_close(offset, want, &format!("{what} round {r} offset")),
                None => assert!(offset.is_empty(), "{what}: round 0 needs no correction"),
            }
        }
        let out = round.run(&mut aggregator).unwrap();
        assert_close(
            &out.global,
            &want.global,
            &format!("{what} round {r} global"),
        );
        assert_close(
            aggregator.control(),
            &want.control,
            &format!("{what} round {r} c"),
        );
        for (client, own) in want.client_controls.iter().enumerate() {
            let got = aggregator.client_control(client as u32);
            match own {
                Some(own) => assert_close(got, own, &format!("{what} round {r} c_{client}")),
                None => assert!(
                    got.is_empty(),
                    "{what} round {r}: client {client} never trained"
                ),
            }
        }
    }
}

#[test]
fn published_scaffold_averages_uniformly() {
    // w_1 = mean(y_i) = [(1 + 0.25 + 0.75)/3, (−0.5 − 1.5 − 1.25)/3, (2 + 2.5 + 1.5)/3].
    check(
        "",
        [
            [2.0 / 3.0, -13.0 / 12.0, 2.0],
            [19.0 / 24.0, -1.0, 11.0 / 6.0],
            [0.875, -1.0, 1.625],
        ],
        "scaffold",
    );
}

#[test]
fn published_scaffold_with_a_server_learning_rate() {
    // w_1 = w_0 + 0.5 (mean(y_i) − w_0) = [0.5 + 0.5 (2/3 − 0.5), …].
    check(
        r#"{"server_lr": 0.5}"#,
        [
            [7.0 / 12.0, -25.0 / 24.0, 2.0],
            [17.0 / 24.0, -17.0 / 16.0, 89.0 / 48.0],
            [0.8125, -1.0, 1.6875],
        ],
        "scaffold η_g=0.5",
    );
}

#[test]
fn openfedllm_scaffold_weights_the_average_by_examples() {
    // The globals are FedAvg's (see fedavg.rs); the control variates are the same.
    check(
        r#"{"variant": "openfedllm"}"#,
        [
            [0.65625, -1.21875, 1.8125],
            [0.75, -0.90625, 1.8125],
            [1.0625, -0.75, 1.4375],
        ],
        "scaffold openfedllm",
    );
}

#[test]
fn the_published_gradient_form_hands_out_the_same_correction() {
    check(
        r#"{"correction": "gradient"}"#,
        [
            [2.0 / 3.0, -13.0 / 12.0, 2.0],
            [19.0 / 24.0, -1.0, 11.0 / 6.0],
            [0.875, -1.0, 1.625],
        ],
        "scaffold through the gradient",
    );
}

/// OpenFedLLM's SCAFFOLD round after two clients took two AdamW steps each at `η_l = 1/8`
/// (`core/src/train/plan.rs` trains them from `w_t = (1/2, −1/4)` by hand): `N = 4`,
/// `c = (1/8, −1/4)`, `c_A = (−1/8, 1/4)`, `c_B = (1/4, −1/2)`, so the clients get the weight
/// offsets `c − c_A = (1/4, −1/2)` and `c − c_B = (−1/8, 1/4)` and come back with `y_A`, `y_B`
/// (those steps, rounded to f32), holding 3 and 1 examples. By hand, in float64:
/// `w_{t+1} = (3 y_A + y_B) / 4`, `c_i⁺ = c_i − c + (w_t − y_i) / (2 · 1/8)`,
/// `c⁺ = c + (Δc_A + Δc_B) / 4`.
#[test]
fn openfedllm_scaffold_after_two_clients_took_two_steps() {
    let mut state = StateWriter::new("scaffold");
    state.u64(4);
    state.f32s(&[0.125, -0.25]);
    state.u64(2);
    state.u64(0);
    state.f32s(&[-0.125, 0.25]);
    state.u64(1);
    state.f32s(&[0.25, -0.5]);
    let mut aggregator = scaffold(r#"{"variant": "openfedllm"}"#);
    aggregator.load_state(&state.finish()).unwrap();
    let global = [0.5f32, -0.25];
    for (who, want) in [(0, [0.25, -0.5]), (1, [-0.125, 0.25])] {
        let plan = aggregator.client_plan(who, &global).unwrap();
        assert_close(&plan.weight_offset, &want, "weight offset c − c_i");
        assert!(plan.gradient_offset.is_empty());
    }
    let round = Round {
        round: 5,
        n_clients: 4,
        global: global.to_vec(),
        clients: vec![
            two_client(0, [0.195_977_55, -0.006_578_952], 3),
            two_client(1, [0.714_933_5, -0.375_726_25], 1),
        ],
    };
    let out = round.run(&mut aggregator).unwrap();
    assert_close(&out.global, &[0.3257165439, -0.0988657773], "w_{t+1}");
    assert_close(aggregator.control(), &[0.1515889317, -0.2426947951], "c");
    assert_close(
        aggregator.client_control(0),
        &[0.9660897851, -0.4736841917],
        "c_A",
    );
    assert_close(
        aggregator.client_control(1),
        &[-0.7347340584, 0.2529050112],
        "c_B",
    );
}

/// A client of the two-client round: 2 local steps at `η_l = 1/8`.
fn two_client(client: u32, params: [f32; 2], n_examples: u64) -> Client {
    Client {
        client,
        params: params.to_vec(),
        n_examples,
        local_steps: 2,
        learning_rate: 0.125,
    }
}

#[test]
fn scaffold_reports_the_control_norm() {
    let mut aggregator = scaffold("");
    let out = rounds()[0].run(&mut aggregator).unwrap();
    let norm = (0.15625f64.powi(2) + 0.03125f64.powi(2) + 0.1875f64.powi(2)).sqrt();
    let got = out
        .metrics
        .iter()
        .find(|m| m.name.as_str() == "control_norm")
        .unwrap()
        .value;
    assert!((got - norm).abs() < 1e-7, "{got} vs {norm}");
}

//! Input checks shared by every rule, the outlier bound, the state header, and parameters.

use fedpref_plugin_api::{state, ErrorKind};

use super::{assert_error, make, try_make, with_outlier, ALL, HONEST};

#[test]
fn a_client_of_the_wrong_length_is_named() {
    for name in ALL {
        let mut round = with_outlier();
        round.clients[2].params.pop();
        assert_error(
            round.run(make(name, "").as_mut()),
            ErrorKind::InvalidInput,
            &[name, "client 2 sent 3 parameters", "global model has 4"],
        );
    }
}

#[test]
fn an_empty_round_is_refused() {
    for name in ALL {
        let mut round = with_outlier();
        round.clients.clear();
        assert_error(
            round.run(make(name, "").as_mut()),
            ErrorKind::InvalidInput,
            &[name, "no client update"],
        );
    }
}

#[test]
fn a_client_index_beyond_n_clients_is_refused() {
    for name in ALL {
        let mut round = with_outlier();
        round.n_clients = 4;
        assert_error(
            round.run(make(name, "").as_mut()),
            ErrorKind::InvalidInput,
            &["client index 4", "federation of 4 clients"],
        );
    }
}

#[test]
fn duplicates_and_non_finite_values_are_refused() {
    let mut round = with_outlier();
    round.clients[1].client = 3;
    assert_error(
        round.run(make("median", "").as_mut()),
        ErrorKind::InvalidInput,
        &["client 3 sent two updates"],
    );
    let mut round = with_outlier();
    round.clients[4].params[0] = f32::NAN;
    assert_error(
        round.run(make("krum", "").as_mut()),
        ErrorKind::InvalidInput,
        &["client 4 sent parameter 0 = NaN"],
    );
}

#[test]
fn every_rule_stays_within_the_honest_range() {
    let lows: Vec<f32> = (0..4)
        .map(|j| HONEST.iter().map(|c| c[j]).fold(f32::MAX, f32::min))
        .collect();
    let highs: Vec<f32> = (0..4)
        .map(|j| HONEST.iter().map(|c| c[j]).fold(f32::MIN, f32::max))
        .collect();
    for (name, params) in [
        ("median", ""),
        ("trimmed-mean", r#"{"trim": 0.2}"#),
        ("krum", ""),
        ("multi-krum", ""),
    ] {
        let out = with_outlier().run(make(name, params).as_mut()).unwrap();
        for j in 0..4 {
            let x = out.global[j];
            assert!(
                lows[j] <= x && x <= highs[j],
                "{name}: coordinate {j} = {x} left the honest range"
            );
        }
    }
}

#[test]
fn state_is_a_header_that_round_trips() {
    for name in ALL {
        let original = make(name, "");
        let saved = original.save_state().unwrap();
        assert_eq!(saved, state::header(name));
        let mut restored = make(name, "");
        restored.load_state(&saved).unwrap();
        let a = with_outlier().run(make(name, "").as_mut()).unwrap();
        let b = with_outlier().run(restored.as_mut()).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.global), bits(&b.global), "{name}");
    }
}

#[test]
fn foreign_state_bytes_are_refused() {
    let mut median = make("median", "");
    assert_error(
        median.load_state(b""),
        ErrorKind::InvalidInput,
        &["not a fedpref aggregator state"],
    );
    assert_error(
        median.load_state(b"{\"rule\": 1}"),
        ErrorKind::InvalidInput,
        &["median", "not a fedpref aggregator state"],
    );
    assert_error(
        median.load_state(&state::header("krum")),
        ErrorKind::InvalidInput,
        &["written by aggregator \"krum\", not \"median\""],
    );
    // A stateful rule's checkpoint: same header layout, another name, and a body.
    let mut fedadam = state::header("fedadam");
    fedadam.extend_from_slice(&[0; 24]);
    assert_error(
        median.load_state(&fedadam),
        ErrorKind::InvalidInput,
        &["\"fedadam\""],
    );
    let mut padded = state::header("median");
    padded.push(1);
    assert_error(
        median.load_state(&padded),
        ErrorKind::InvalidInput,
        &["1 bytes after its header"],
    );
    let mut newer = state::header("median");
    newer[8] = 2;
    assert_error(
        median.load_state(&newer),
        ErrorKind::InvalidInput,
        &["version 2"],
    );
    let short = &state::header("median")[..15];
    assert_error(
        median.load_state(short),
        ErrorKind::InvalidInput,
        &["truncated"],
    );
}

#[test]
fn bad_parameters_name_the_key_and_the_expected_value() {
    let cases = [
        ("median", r#"{"trim": 0.1}"#, "unknown parameter `trim`"),
        (
            "trimmed-mean",
            r#"{"trim": 0.6}"#,
            "`trim` = 0.6 is outside [0, 0.5]",
        ),
        (
            "trimmed-mean",
            r#"{"trim": -0.1}"#,
            "`trim` = -0.1 is outside [0, 0.5]",
        ),
        (
            "trimmed-mean",
            r#"{"trim": "a lot"}"#,
            "`trim` must be a number",
        ),
        (
            "trimmed-mean",
            r#"{"beta": 0.1}"#,
            "unknown parameter `beta` (known: trim)",
        ),
        (
            "krum",
            r#"{"byzantine": -1}"#,
            "`byzantine` must be a whole number >= 0, got -1",
        ),
        (
            "krum",
            r#"{"byzantine": 1.5}"#,
            "`byzantine` must be a whole number >= 0, got 1.5",
        ),
        ("krum", r#"{"keep": 2}"#, "unknown parameter `keep`"),
        (
            "multi-krum",
            r#"{"keep": 0}"#,
            "`keep` must be a whole number >= 1, got 0",
        ),
        (
            "multi-krum",
            r#"{"f": 1}"#,
            "unknown parameter `f` (known: byzantine, keep)",
        ),
    ];
    for (name, params, needle) in cases {
        assert_error(try_make(name, params), ErrorKind::InvalidParams, &[needle]);
    }
}

#[test]
fn robust_rules_plan_plain_local_training() {
    for name in ALL {
        let plan = make(name, "").client_plan(0, &[0.0; 4]).unwrap();
        assert_eq!(plan, fedpref_plugin_api::ClientPlan::plain(), "{name}");
    }
}

#[test]
fn the_global_vector_does_not_enter_the_result() {
    // The rules aggregate the parameters y_i themselves; w_t only feeds update_norm.
    let mut shifted = with_outlier();
    shifted.global = vec![5.0; 4];
    for name in ALL {
        let a = with_outlier().run(make(name, "").as_mut()).unwrap();
        let b = shifted.run(make(name, "").as_mut()).unwrap();
        assert_eq!(a.global, b.global, "{name}");
    }
}

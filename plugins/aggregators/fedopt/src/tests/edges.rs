//! Input checks shared by every rule, their effect on state, and parameter validation.

use fedpref_plugin_api::ErrorKind;

use super::{assert_error, make, rounds, try_make, Round, ALL};

#[test]
fn a_client_of_the_wrong_length_is_named() {
    for (name, params) in ALL {
        let mut round = rounds()[0].clone();
        round.clients[1].params.pop();
        assert_error(
            round.run(make(name, params).as_mut()),
            ErrorKind::InvalidInput,
            &[name, "client 2 sent 2 parameters", "global model has 3"],
        );
    }
}

#[test]
fn an_empty_round_is_refused() {
    for (name, params) in ALL {
        let mut round = rounds()[1].clone();
        round.clients.clear();
        assert_error(
            round.run(make(name, params).as_mut()),
            ErrorKind::InvalidInput,
            &["no client update", "round 1"],
        );
    }
}

#[test]
fn a_client_index_beyond_n_clients_is_refused() {
    for (name, params) in ALL {
        let mut round = rounds()[0].clone();
        round.n_clients = 3;
        assert_error(
            round.run(make(name, params).as_mut()),
            ErrorKind::InvalidInput,
            &["client index 3", "federation of 3 clients"],
        );
    }
}

#[test]
fn a_client_twice_in_a_round_is_refused() {
    let mut round = rounds()[0].clone();
    round.clients[2].client = 0;
    assert_error(
        round.run(make("fedavg", "").as_mut()),
        ErrorKind::InvalidInput,
        &["client 0 sent two updates"],
    );
}

#[test]
fn non_finite_inputs_are_refused() {
    let mut round = rounds()[0].clone();
    round.clients[0].params[1] = f32::NAN;
    assert_error(
        round.run(make("fedadam", "").as_mut()),
        ErrorKind::InvalidInput,
        &["client 0 sent parameter 1 = NaN"],
    );
    let mut round = rounds()[0].clone();
    round.global[2] = f32::INFINITY;
    assert_error(
        round.run(make("fedavg", "").as_mut()),
        ErrorKind::InvalidInput,
        &["global parameter 2 is inf"],
    );
}

#[test]
fn zero_examples_cannot_be_weighted_by_examples() {
    let mut round = rounds()[0].clone();
    for c in &mut round.clients {
        c.n_examples = 0;
    }
    assert_error(
        round.run(make("fedavg", "").as_mut()),
        ErrorKind::InvalidInput,
        &["fedavg", "every client update holds 0 examples"],
    );
    // Uniform weighting does not look at the counts.
    let out = round
        .run(make("fedavgm", r#"{"weighting": "uniform"}"#).as_mut())
        .unwrap();
    assert!(out.global.iter().all(|x| x.is_finite()));
}

#[test]
fn a_failed_round_leaves_the_state_untouched() {
    for (name, params) in ALL {
        let mut aggregator = make(name, params);
        rounds()[0].run(aggregator.as_mut()).unwrap();
        let before = aggregator.save_state().unwrap();
        let mut bad = rounds()[1].clone();
        bad.clients[2].params.push(1.0);
        assert!(bad.run(aggregator.as_mut()).is_err());
        assert_eq!(aggregator.save_state().unwrap(), before, "{name} {params}");
    }
}

#[test]
fn a_state_of_another_size_is_refused() {
    for name in ["fedavgm", "fedadam", "scaffold"] {
        let mut aggregator = make(name, "");
        rounds()[0].run(aggregator.as_mut()).unwrap();
        let mut bigger = rounds()[1].clone();
        bigger.global.push(0.0);
        for c in &mut bigger.clients {
            c.params.push(0.0);
        }
        assert_error(
            bigger.run(aggregator.as_mut()),
            ErrorKind::InvalidInput,
            &[name, "holds 3 parameters", "has 4"],
        );
    }
}

#[test]
fn an_overflowing_update_fails_instead_of_returning_inf() {
    let round = Round {
        round: 0,
        n_clients: 1,
        global: vec![0.0],
        clients: vec![super::Client {
            client: 0,
            params: vec![3e38],
            n_examples: 1,
            local_steps: 1,
            learning_rate: 1.0,
        }],
    };
    assert_error(
        round.run(make("fedavgm", r#"{"server_lr": 10}"#).as_mut()),
        ErrorKind::Failed,
        &["new global parameter 0 is inf", "overflowed"],
    );
}

#[test]
fn scaffold_checks_client_indices_steps_and_federation_size() {
    let mut scaffold = make("scaffold", "");
    rounds()[0].run(scaffold.as_mut()).unwrap();
    assert_error(
        scaffold.client_plan(4, &rounds()[1].global),
        ErrorKind::InvalidInput,
        &["client index 4", "federation of 4 clients"],
    );
    assert_error(
        scaffold.client_plan(0, &[0.0; 2]),
        ErrorKind::InvalidInput,
        &["holds 3 parameters", "has 2"],
    );

    let mut no_steps = rounds()[1].clone();
    no_steps.clients[1].local_steps = 0;
    assert_error(
        no_steps.run(scaffold.as_mut()),
        ErrorKind::InvalidInput,
        &["client 1", "local_steps = 0"],
    );
    let mut no_lr = rounds()[1].clone();
    no_lr.clients[2].learning_rate = 0.0;
    assert_error(
        no_lr.run(scaffold.as_mut()),
        ErrorKind::InvalidInput,
        &["client 3", "learning_rate = 0"],
    );

    let mut grown = rounds()[1].clone();
    grown.n_clients = 5;
    assert_error(
        grown.run(scaffold.as_mut()),
        ErrorKind::InvalidInput,
        &["had 4 clients", "now has 5"],
    );
}

#[test]
fn unknown_parameters_are_refused_with_the_known_ones() {
    let e = try_make("fedadam", r#"{"eta": 0.1}"#).err().unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    for needle in [
        "`eta`",
        "server_lr",
        "tau",
        "beta1",
        "beta2",
        "variant",
        "weighting",
    ] {
        assert!(e.message.contains(needle), "{}", e.message);
    }
    // FedAdagrad has no β2.
    let e = try_make("fedadagrad", r#"{"beta2": 0.9}"#).err().unwrap();
    assert!(
        e.message.contains("unknown parameter `beta2`"),
        "{}",
        e.message
    );
    let e = try_make("fedavg", r#"{"mu": 0.1}"#).err().unwrap();
    assert!(
        e.message.contains("unknown parameter `mu`"),
        "{}",
        e.message
    );
}

#[test]
fn bad_choices_list_the_allowed_values() {
    for name in ["scaffold", "fedavgm", "fedadagrad", "fedyogi", "fedadam"] {
        let e = try_make(name, r#"{"variant": "flower"}"#).err().unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidParams);
        assert!(
            e.message
                .contains("\"flower\" is not one of published, openfedllm"),
            "{}",
            e.message
        );
        let e = try_make(name, r#"{"weighting": "tokens"}"#).err().unwrap();
        assert!(
            e.message
                .contains("\"tokens\" is not one of examples, uniform"),
            "{}",
            e.message
        );
    }
}

#[test]
fn out_of_range_numbers_are_refused() {
    let cases = [
        ("fedprox", r#"{"mu": -0.5}"#, "`mu` = -0.5"),
        ("fedprox", r#"{"mu": "big"}"#, "`mu` must be a number"),
        (
            "fedavgm",
            r#"{"momentum": 1.0}"#,
            "`momentum` = 1 is outside [0, 1)",
        ),
        (
            "fedavgm",
            r#"{"server_lr": 0}"#,
            "`server_lr` = 0 must be a finite number > 0",
        ),
        ("scaffold", r#"{"server_lr": -1}"#, "`server_lr` = -1"),
        (
            "fedadam",
            r#"{"tau": 0}"#,
            "`tau` = 0 must be a finite number > 0",
        ),
        (
            "fedadam",
            r#"{"beta1": -0.1}"#,
            "`beta1` = -0.1 is outside [0, 1)",
        ),
        (
            "fedyogi",
            r#"{"beta2": 1.5}"#,
            "`beta2` = 1.5 is outside [0, 1)",
        ),
        (
            "fedadagrad",
            r#"{"variant": "openfedllm", "beta1": 0.5}"#,
            "no momentum",
        ),
    ];
    for (name, params, needle) in cases {
        assert_error(try_make(name, params), ErrorKind::InvalidParams, &[needle]);
    }
}

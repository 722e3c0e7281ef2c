//! Unit tests of the API crate's own logic: batch validation, the paired-loss checks and
//! metrics, the aggregators' base metrics, parameters, panic guards, math and the aggregator state format.

use abi_stable::std_types::RResult;

use crate::{
    check_non_negative, check_positive, check_range, guard, math, paired,
    state::{StateReader, StateWriter, MAGIC},
    testing::loss::OwnedBatch,
    AggregationInput, ClientUpdate, DataNeeds, ErrorKind, Label, LossSpec, Metric, Params,
    PluginError,
};

const PAIRED: LossSpec = LossSpec {
    data: DataNeeds::Paired,
    needs_reference: true,
    needs_kl_batch: false,
};

/// Two pairs, the second laid out rejected first.
fn two_pairs() -> OwnedBatch {
    OwnedBatch {
        policy: vec![-1.0, -2.0, -3.0, -4.0],
        reference: vec![-1.5, -1.5, -3.5, -3.5],
        n_tokens: vec![2, 3, 4, 5],
        labels: vec![
            Label::Chosen,
            Label::Rejected,
            Label::Rejected,
            Label::Chosen,
        ],
        pair: vec![1, 0, 3, 2],
        ..OwnedBatch::default()
    }
}

fn message(result: Result<(), PluginError>) -> String {
    let error = result.expect_err("an error");
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    error.message.into_string()
}

#[test]
fn a_consistent_batch_validates_and_lists_its_pairs() {
    let arrays = two_pairs();
    arrays.batch().validate(&PAIRED).expect("valid batch");
    assert_eq!(arrays.batch().pairs(), vec![(0, 1), (3, 2)]);
}

#[test]
fn validation_names_the_first_inconsistency() {
    let mut short = two_pairs();
    short.n_tokens.pop();
    assert_eq!(
        message(short.batch().validate(&PAIRED)),
        "n_tokens has 3 entries but logp_policy has 4"
    );

    let mut no_reference = two_pairs();
    no_reference.reference.clear();
    assert!(message(no_reference.batch().validate(&PAIRED)).starts_with("logp_ref has 0 entries"));

    let mut asymmetric = two_pairs();
    asymmetric.pair[1] = 2;
    assert_eq!(
        message(asymmetric.batch().validate(&PAIRED)),
        "pair[0] = 1 is not a symmetric partner index"
    );

    let mut same_label = two_pairs();
    same_label.labels[1] = Label::Chosen;
    assert_eq!(
        message(same_label.batch().validate(&PAIRED)),
        "sequences 0 and 1 are paired but carry the same label"
    );

    let mut empty_answer = two_pairs();
    empty_answer.n_tokens[2] = 0;
    assert!(message(empty_answer.batch().validate(&PAIRED)).starts_with("n_tokens[2] = 0"));
}

#[test]
fn paired_losses_get_their_pairs_only_from_a_clean_batch() {
    let arrays = two_pairs();
    assert_eq!(
        paired::validated_pairs(&arrays.batch(), &PAIRED, "dpo"),
        Ok(vec![(0, 1), (3, 2)])
    );

    let mut single = two_pairs();
    single.pair = vec![1, 0, -1, -1];
    assert_eq!(
        message(paired::validated_pairs(&single.batch(), &PAIRED, "simpo").map(|_| ())),
        "sequence 2 (rejected) has no partner (pair[2] = -1); simpo needs every sequence in a (chosen, rejected) pair"
    );

    let mut infinite = two_pairs();
    infinite.reference[3] = f32::INFINITY;
    assert_eq!(
        message(paired::validated_pairs(&infinite.batch(), &PAIRED, "dpo").map(|_| ())),
        "logp_ref[3] = inf is not finite"
    );
    // A loss without a reference ignores whatever the reference array holds.
    let no_reference = LossSpec {
        needs_reference: false,
        ..PAIRED
    };
    assert!(infinite.batch().check_finite(&no_reference).is_ok());
}

#[test]
fn reward_metrics_are_means_over_pairs() {
    let rewards = [1.0, -1.0, 0.5, 2.0];
    let metrics = paired::reward_metrics(&[(0, 1), (2, 3)], |i| rewards[i]);
    let values: Vec<(&str, f64)> = metrics.iter().map(|m| (m.name.as_str(), m.value)).collect();
    assert_eq!(
        values,
        [
            ("rewards/chosen", 0.75),
            ("rewards/rejected", 0.5),
            ("rewards/margins", 0.25),
            ("rewards/accuracies", 0.5),
        ]
    );
    assert!(paired::reward_metrics(&[], |i| rewards[i])
        .iter()
        .all(|m| m.value.is_nan()));
}

#[test]
fn base_metrics_count_the_updates_and_measure_the_step() {
    let (global, a, b) = ([0.0f32, 0.0], [1.0f32, 1.0], [3.0f32, 4.0]);
    fn update(client: u32, params: &[f32]) -> ClientUpdate<'_> {
        ClientUpdate {
            client,
            params: params.into(),
            n_examples: 1,
            local_steps: 1,
            learning_rate: 1e-4,
        }
    }
    let updates = [update(0, &a), update(1, &b)];
    let input = AggregationInput {
        round: 0,
        n_clients: 2,
        global: global.as_slice().into(),
        updates: updates.as_slice().into(),
    };
    assert_eq!(
        input.base_metrics(&[3.0, 4.0]),
        [Metric::new("clients", 2.0), Metric::new("update_norm", 5.0)]
    );
}

#[test]
fn params_read_typed_values_and_reject_unknown_keys() {
    let params =
        Params::parse(r#"{"beta": 0.25, "variant": "ipo", "typo": 1}"#).expect("a JSON object");
    assert_eq!(params.f64_or("beta", 0.1).expect("a number"), 0.25);
    assert_eq!(params.f64_or("absent", 0.1).expect("the default"), 0.1);
    assert_eq!(
        params
            .choice("variant", &["sigmoid", "ipo"], "sigmoid")
            .expect("allowed"),
        "ipo"
    );
    let error = params.finish().expect_err("typo is unknown");
    assert_eq!(error.kind, ErrorKind::InvalidParams);
    assert!(
        error.message.contains("unknown parameter `typo`"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("beta") && error.message.contains("variant"),
        "{}",
        error.message
    );
}

#[test]
fn params_errors_name_the_key_and_the_allowed_values() {
    let params = Params::parse(r#"{"beta": "high", "variant": "sigmod"}"#).expect("a JSON object");
    assert_eq!(
        params
            .f64_or("beta", 0.1)
            .expect_err("not a number")
            .message,
        "`beta` must be a number, got \"high\""
    );
    let error = params
        .choice("variant", &["sigmoid", "ipo"], "sigmoid")
        .expect_err("not allowed");
    assert_eq!(
        error.message,
        "`variant` = \"sigmod\" is not one of sigmoid, ipo"
    );
    assert_eq!(
        Params::parse("[1, 2]").expect_err("not an object").kind,
        ErrorKind::InvalidParams
    );
    assert!(Params::parse("")
        .expect("empty means none")
        .finish()
        .is_ok());
    assert!(check_range("epsilon", 0.7, 0.0, 0.5).is_err());
    assert_eq!(check_range("epsilon", 0.5, 0.0, 0.5).expect("inside"), 0.5);
}

#[test]
fn whole_numbers_read_as_any_unsigned_type_within_their_range() {
    let params = Params::parse(r#"{"a": 3, "b": 2.0, "c": 2.5, "d": -1, "e": "x", "f": 70}"#)
        .expect("a JSON object");
    assert_eq!(params.whole_or("a", 0u64, 0..), Ok(3));
    assert_eq!(params.whole_or("b", 0usize, 1..), Ok(2));
    assert_eq!(params.whole_or("absent", 7u32, 1..=5), Ok(7));
    let message = |key: &str, range: std::ops::RangeInclusive<u32>| {
        params
            .whole_or(key, 1u32, range)
            .expect_err("refused")
            .message
    };
    assert_eq!(
        message("c", 0..=9),
        "`c` must be a whole number in [0, 9], got 2.5"
    );
    assert_eq!(
        message("d", 0..=9),
        "`d` must be a whole number in [0, 9], got -1"
    );
    assert_eq!(
        message("e", 0..=9),
        "`e` must be a whole number in [0, 9], got \"x\""
    );
    assert_eq!(
        message("f", 1..=64),
        "`f` must be a whole number in [1, 64], got 70"
    );
    assert_eq!(
        params.whole_or("a", 1u64, 4..).expect_err("below").message,
        "`a` must be a whole number >= 4, got 3"
    );
    let huge = Params::parse(r#"{"n": 5000000000}"#).expect("a JSON object");
    assert_eq!(huge.whole_or("n", 0u64, ..), Ok(5_000_000_000));
    assert_eq!(
        huge.whole_or("n", 0u32, ..).expect_err("too big").message,
        "`n` must be a whole number, got 5000000000"
    );
    assert_eq!(
        check_positive("beta", 0.0).expect_err("zero").message,
        "`beta` = 0 must be a finite number > 0"
    );
    assert_eq!(check_non_negative("gamma", 0.0), Ok(0.0));
    assert!(check_non_negative("gamma", f64::NAN).is_err());
}

#[test]
fn guard_turns_a_panic_into_an_error_with_its_location() {
    let result: RResult<(), PluginError> = guard(|| panic!("boom {}", 7));
    let error = result.into_result().expect_err("the panic is caught");
    assert_eq!(error.kind, ErrorKind::Panicked);
    assert!(error.message.starts_with("boom 7 at "), "{}", error.message);
    assert!(error.message.contains("tests.rs"), "{}", error.message);
    assert_eq!(guard(|| Ok::<_, PluginError>(3)).into_result(), Ok(3));
}

#[test]
fn stable_math_matches_the_naive_forms_and_never_overflows() {
    for x in [-30.0f64, -2.5, -0.1, 0.0, 0.3, 4.0, 30.0] {
        let naive_sigmoid = 1.0 / (1.0 + (-x).exp());
        assert!(
            (math::sigmoid(x) - naive_sigmoid).abs() < 1e-15,
            "sigmoid({x})"
        );
        assert!(
            (math::log_sigmoid(x) - naive_sigmoid.ln()).abs() < 1e-12,
            "log_sigmoid({x})"
        );
        assert!(
            (math::softplus(x) - (1.0 + x.exp()).ln()).abs() < 1e-12,
            "softplus({x})"
        );
    }
    assert_eq!(math::log_sigmoid(1e4), 0.0);
    assert_eq!(math::log_sigmoid(-1e4), -1e4);
    assert_eq!(math::sigmoid(-1e4), 0.0);
    assert_eq!(math::softplus(1e4), 1e4);
    assert!(math::mean(Vec::<f64>::new()).is_nan());
    assert_eq!(math::mean([1.0, 2.0, 6.0]), 3.0);
}

#[test]
fn the_layout_is_the_documented_one() {
    let mut w = StateWriter::new("abc");
    w.u64(7);
    w.f32s(&[1.0, -0.0]);
    let bytes = w.finish();
    let mut want = MAGIC.to_vec();
    want.extend_from_slice(&[1, 0, 0, 0, 3, b'a', b'b', b'c']);
    want.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x80]);
    assert_eq!(bytes, want);
    let mut r = StateReader::new(&bytes, "abc").unwrap();
    assert_eq!(r.u64("scalar").unwrap(), 7);
    let v = r.f32s("vector").unwrap();
    assert_eq!(
        v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        vec![1.0f32.to_bits(), (-0.0f32).to_bits()]
    );
    r.finish().unwrap();
}

#[test]
fn special_f32_values_round_trip_bit_exactly() {
    let values = [
        f32::MIN_POSITIVE / 3.0,
        -0.0,
        f32::MAX,
        1.0 + f32::EPSILON,
        f32::NAN,
    ];
    let mut w = StateWriter::new("x");
    w.f32s(&values);
    let bytes = w.finish();
    let mut r = StateReader::new(&bytes, "x").unwrap();
    let back = r.f32s("v").unwrap();
    assert_eq!(
        back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        values.map(f32::to_bits).to_vec()
    );
}

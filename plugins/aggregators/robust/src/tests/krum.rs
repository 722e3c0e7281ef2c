//! Krum and Multi-Krum: scores, choices and tie-breaks on hand examples.

use fedpref_plugin_api::ErrorKind;

use super::{assert_close, assert_error, make, metric, with_outlier, Round, HONEST};

/// Five points in the plane; client 4 is far away. With f = 1 each score sums the
/// m − f − 2 = 2 smallest squared distances:
///
/// ```text
///        A=0 [0,0]  B=1 [1,0]  C=2 [0,2]  D=3 [1,1]  E=4 [100,100]
/// A        -          1          4          2         20000
/// B        1          -          5          1         19801
/// C        4          5          -          2         19604
/// D        2          1          2          -         19602
/// score  1+2=3      1+1=2      2+4=6      1+2=3     19602+19604=39206
/// ```
fn plane() -> Round {
    Round::new(
        5,
        &[
            (0, &[0.0, 0.0]),
            (1, &[1.0, 0.0]),
            (2, &[0.0, 2.0]),
            (3, &[1.0, 1.0]),
            (4, &[100.0, 100.0]),
        ],
    )
}

#[test]
fn krum_picks_the_client_closest_to_its_neighbours() {
    let out = plane().run(make("krum", "").as_mut()).unwrap();
    assert_eq!(out.global.as_slice(), &[1.0, 0.0]);
    assert_eq!(metric(&out, "selected_client"), 1.0);
    assert_eq!(metric(&out, "kept"), 1.0);
    for (client, score) in [3.0, 2.0, 6.0, 3.0, 39206.0].iter().enumerate() {
        assert_eq!(
            metric(&out, &format!("score/{client}")),
            *score,
            "client {client}"
        );
    }
}

#[test]
fn multi_krum_averages_the_best_scores() {
    // keep = m − f = 4: A, B, C, D → [0.5, 0.75].
    let out = plane().run(make("multi-krum", "").as_mut()).unwrap();
    assert_eq!(out.global.as_slice(), &[0.5, 0.75]);
    assert_eq!(metric(&out, "kept"), 4.0);
    // keep = 2: B (2), then A and D tie at 3 and the lower client index, A, wins → [0.5, 0].
    let out = plane()
        .run(make("multi-krum", r#"{"keep": 2}"#).as_mut())
        .unwrap();
    assert_eq!(out.global.as_slice(), &[0.5, 0.0]);
}

#[test]
fn krum_ignores_the_outlier() {
    // Honest squared distances: 0–1 3.0625, 0–2 1.75, 0–3 8.3125, 1–2 5.0625, 1–3 2.5,
    // 2–3 6.8125; two nearest: client 0 1.75 + 3.0625 = 4.8125 (best), 1 5.5625, 2 6.8125,
    // 3 9.3125.
    let out = with_outlier()
        .run(make("krum", r#"{"byzantine": 1}"#).as_mut())
        .unwrap();
    assert_eq!(out.global.as_slice(), &HONEST[0]);
    assert_eq!(metric(&out, "selected_client"), 0.0);
    assert_eq!(metric(&out, "score/0"), 4.8125);
    assert_eq!(metric(&out, "score/3"), 9.3125);
    assert!(metric(&out, "score/4") > 1e59);
    // Multi-Krum keeps the four honest clients: their mean.
    let out = with_outlier().run(make("multi-krum", "").as_mut()).unwrap();
    assert_close(&out.global, &[1.875, -1.875, 0.625, 2.125], "multi-krum");
}

#[test]
fn ties_go_to_the_lowest_client_index_not_the_first_update() {
    // Points 0..4 on a line, f = 1: scores 5, 2, 2, 2, 5. The three tied points are held by
    // clients 9 (2.0), 4 (3.0) and 6 (1.0), listed in that order; client 4 wins.
    let round = Round::new(
        10,
        &[
            (9, &[2.0]),
            (4, &[3.0]),
            (6, &[1.0]),
            (0, &[0.0]),
            (8, &[4.0]),
        ],
    );
    let out = round.run(make("krum", "").as_mut()).unwrap();
    assert_eq!(metric(&out, "selected_client"), 4.0);
    assert_eq!(out.global.as_slice(), &[3.0]);
    // Multi-Krum with keep = 2 takes clients 4 and 6: (3 + 1)/2.
    let out = round
        .run(make("multi-krum", r#"{"keep": 2}"#).as_mut())
        .unwrap();
    assert_eq!(out.global.as_slice(), &[2.0]);
}

#[test]
fn byzantine_zero_uses_m_minus_two_neighbours() {
    // m = 3, f = 0: one neighbour each. Distances 0–1: 1, 0–2: 9, 1–2: 4 → scores 1, 1, 4.
    let round = Round::new(3, &[(0, &[0.0]), (1, &[1.0]), (2, &[3.0])]);
    let out = round
        .run(make("krum", r#"{"byzantine": 0}"#).as_mut())
        .unwrap();
    assert_eq!(metric(&out, "selected_client"), 0.0);
    assert_eq!(metric(&out, "score/2"), 4.0);
}

#[test]
fn too_few_clients_for_the_assumed_faults_is_an_error() {
    // m = 4, f = 1: 4 > 2 · 1 + 2 fails.
    assert_error(
        with_outlier().without(4).run(make("krum", "").as_mut()),
        ErrorKind::InvalidInput,
        &[
            "krum",
            "more than 2f + 2 = 4 clients",
            "byzantine = 1",
            "got 4",
        ],
    );
    assert_error(
        with_outlier().run(make("multi-krum", r#"{"byzantine": 2}"#).as_mut()),
        ErrorKind::InvalidInput,
        &["multi-krum", "more than 2f + 2 = 6 clients", "got 5"],
    );
}

#[test]
fn a_huge_byzantine_count_is_an_error_not_an_overflow() {
    let params = format!(r#"{{"byzantine": {}}}"#, u64::MAX);
    assert_error(
        with_outlier().run(make("krum", &params).as_mut()),
        ErrorKind::InvalidInput,
        &["more than 2f + 2", "got 5"],
    );
}

#[test]
fn keeping_more_clients_than_sent_is_an_error() {
    assert_error(
        with_outlier().run(make("multi-krum", r#"{"keep": 6}"#).as_mut()),
        ErrorKind::InvalidInput,
        &["keep = 6 exceeds the 5 clients"],
    );
}

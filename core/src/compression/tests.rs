//! Error feedback on a toy problem, and the host's check of a codec's size formula.

use super::*;
use crate::plugin_host::test_plugins;

#[test]
fn error_feedback_recovers_the_uncompressed_sum_over_rounds() {
    // The same update every round through a top-1 codec. Without error feedback only the
    // largest coordinate ever arrives; with it, everything sent adds up to everything meant,
    // less the residual still held, which stays bounded.
    let host = test_plugins::host();
    let codec = host
        .codec("test-top-1", &serde_json::json!({}))
        .expect("codec");
    let update = [1.0f32, 0.5, 0.25, 0.1];
    let rounds = 60;
    let run = |feedback: bool| {
        let mut residual = Vec::new();
        let mut received = vec![0f64; 4];
        for round in 0..rounds {
            let sent = transmit(&codec, &update, feedback.then_some(&mut residual), round)
                .expect("transmit");
            assert_eq!(sent.bytes.len(), 8);
            received
                .iter_mut()
                .zip(&sent.decoded)
                .for_each(|(r, d)| *r += f64::from(*d));
        }
        (received, residual)
    };
    let meant: Vec<f64> = update
        .iter()
        .map(|u| f64::from(*u) * f64::from(rounds as u32))
        .collect();
    let (plain, _) = run(false);
    assert_eq!(plain, vec![60.0, 0.0, 0.0, 0.0]);
    let (fed_back, residual) = run(true);
    for i in 0..4 {
        // Exactly: what arrived plus what is still held is what was meant.
        let held = f64::from(residual[i]);
        assert!(
            (fed_back[i] + held - meant[i]).abs() < 1e-3,
            "coordinate {i}"
        );
        // And what is held is at most about one round's worth of the update.
        assert!(held.abs() <= 2.0, "coordinate {i} holds {held}");
    }
    let gap = |got: &[f64]| {
        got.iter()
            .zip(&meant)
            .map(|(g, m)| (g - m).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    assert!(
        gap(&fed_back) < 0.1 * gap(&plain),
        "{} vs {}",
        gap(&fed_back),
        gap(&plain)
    );
}

#[test]
fn an_encoding_off_its_size_formula_is_a_contract_error() {
    let host = test_plugins::host();
    let liar = host
        .codec("test-liar", &serde_json::json!({}))
        .expect("codec");
    let error = transmit(&liar, &[1.0, 2.0], None, 0).expect_err("a wrong size");
    assert!(
        error
            .to_string()
            .contains("encoded 2 values in 8 bytes; its size formula says 9"),
        "{error}"
    );
}

//! The coordinate-wise trimmed mean by hand.

use fedpref_plugin_api::ErrorKind;

use super::{assert_close, assert_error, make, metric, with_outlier};
use crate::TrimmedMean;

#[test]
fn trimming_one_per_end_drops_the_outlier() {
    // trim = 0.2, m = 5: k = 1. Sorted per coordinate, the middle three:
    // (1.5 + 2 + 3)/3, (−3 − 2 − 1.5)/3, (0.5 + 0.75 + 1)/3, (2 + 2.5 + 3)/3.
    let out = with_outlier()
        .run(make("trimmed-mean", r#"{"trim": 0.2}"#).as_mut())
        .unwrap();
    assert_close(
        &out.global,
        &[6.5 / 3.0, -6.5 / 3.0, 0.75, 2.5],
        "trimmed mean",
    );
    assert_eq!(metric(&out, "trimmed_per_end"), 1.0);
    assert_eq!(metric(&out, "kept"), 3.0);
}

#[test]
fn the_default_trim_of_a_tenth_keeps_five_clients_whole() {
    // ⌊0.1 · 5⌋ = 0: the plain mean of the honest four and of the outlier.
    let out = with_outlier()
        .without(4)
        .run(make("trimmed-mean", "").as_mut())
        .unwrap();
    assert_close(
        &out.global,
        &[1.875, -1.875, 0.625, 2.125],
        "untrimmed mean",
    );
    assert_eq!(metric(&out, "trimmed_per_end"), 0.0);
}

#[test]
fn trimming_half_of_an_odd_count_is_the_median() {
    let out = with_outlier()
        .run(make("trimmed-mean", r#"{"trim": 0.5}"#).as_mut())
        .unwrap();
    assert_eq!(out.global.as_slice(), &[2.0, -2.0, 0.75, 2.5]);
    assert_eq!(metric(&out, "kept"), 1.0);
}

#[test]
fn trimming_everything_is_an_error() {
    // trim = 0.5, m = 4: k = 2 at each end leaves nothing.
    assert_error(
        with_outlier()
            .without(4)
            .run(make("trimmed-mean", r#"{"trim": 0.5}"#).as_mut()),
        ErrorKind::InvalidInput,
        &["removes 2 of 4 clients at each end, leaving none"],
    );
}

#[test]
fn the_count_is_floored_without_losing_decimal_fractions() {
    let trim = |trim| TrimmedMean { trim };
    assert_eq!(trim(0.29).trimmed_per_end(100), 29);
    assert_eq!(trim(0.2).trimmed_per_end(5), 1);
    assert_eq!(trim(0.2).trimmed_per_end(4), 0);
    assert_eq!(trim(0.25).trimmed_per_end(7), 1);
    assert_eq!(trim(0.0).trimmed_per_end(9), 0);
}

//! The coordinate-wise median by hand.

use super::{assert_close, make, metric, with_outlier};

#[test]
fn the_median_ignores_the_outlier() {
    // Sorted per coordinate: [1, 1.5, 2, 3, 1e30], [−1e30, −3, −2, −1.5, −1],
    // [0.25, 0.5, 0.75, 1, 1e30], [1, 2, 2.5, 3, 1e30]; the middle values:
    let out = with_outlier().run(make("median", "").as_mut()).unwrap();
    assert_eq!(out.global.as_slice(), &[2.0, -2.0, 0.75, 2.5]);
    assert_eq!(metric(&out, "clients"), 5.0);
    let norm = (4.0f64 + 4.0 + 0.5625 + 6.25).sqrt();
    assert!((metric(&out, "update_norm") - norm).abs() < 1e-12);
}

#[test]
fn an_even_count_takes_the_mean_of_the_two_middle_values() {
    // Honest clients only: [1, 1.5, 2, 3] → 1.75, [−3, −2, −1.5, −1] → −1.75,
    // [0.25, 0.5, 0.75, 1] → 0.625, [1, 2, 2.5, 3] → 2.25.
    let out = with_outlier()
        .without(4)
        .run(make("median", "").as_mut())
        .unwrap();
    assert_eq!(out.global.as_slice(), &[1.75, -1.75, 0.625, 2.25]);
    // With the outlier instead of client 3: [1, 1.5, 2, 1e30] → 1.75, [−1e30, −3, −2, −1] → −2.5,
    // [0.25, 0.5, 1, 1e30] → 0.75, [2, 2.5, 3, 1e30] → 2.75.
    let out = with_outlier()
        .without(3)
        .run(make("median", "").as_mut())
        .unwrap();
    assert_eq!(out.global.as_slice(), &[1.75, -2.5, 0.75, 2.75]);
}

#[test]
fn the_median_of_one_or_two_clients() {
    let one = with_outlier().without(1).without(2).without(3).without(4);
    let out = one.run(make("median", "").as_mut()).unwrap();
    assert_eq!(out.global.as_slice(), &[1.0, -2.0, 0.5, 3.0]);
    let two = with_outlier().without(2).without(3).without(4);
    let out = two.run(make("median", "").as_mut()).unwrap();
    assert_close(&out.global, &[1.5, -1.5, 0.375, 2.5], "median of two");
}

#[test]
fn the_order_of_the_updates_does_not_matter() {
    let mut reversed = with_outlier();
    reversed.clients.reverse();
    let a = with_outlier().run(make("median", "").as_mut()).unwrap();
    let b = reversed.run(make("median", "").as_mut()).unwrap();
    assert_eq!(a.global, b.global);
}

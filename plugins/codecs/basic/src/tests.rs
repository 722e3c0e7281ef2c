//! Each codec against its size formula, its round-trip error bound, and (for the unbiased ones)
//! its mean over many seeds.

use fedpref_plugin_api::{CodecFunction, Params};

use super::*;

fn params(json: &str) -> Params {
    Params::parse(json).expect("params")
}

/// A vector with values of many magnitudes and both signs, a zero block and exact ties.
fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if (64..128).contains(&i) {
                return 0.0;
            }
            let x = ((i * 7919) % 1000) as f32 / 1000.0 - 0.5;
            x * 10f32.powi((i % 5) as i32 - 4)
        })
        .collect()
}

fn codecs() -> Vec<(&'static str, Box<dyn CodecFunction>)> {
    vec![
        ("f32", Box::new(Float32)),
        ("bf16", Box::new(Half(HalfKind::Bf16))),
        ("fp16", Box::new(Half(HalfKind::Fp16))),
        (
            "int8",
            Box::new(StochasticRounding::from_params(8, &params("")).expect("int8")),
        ),
        (
            "int4",
            Box::new(StochasticRounding::from_params(4, &params("{\"block\": 32}")).expect("int4")),
        ),
        ("top-k", Box::new(TopK { fraction: 0.1 })),
        ("random-k", Box::new(RandomK { fraction: 0.1 })),
    ]
}

#[test]
fn every_encoding_has_the_documented_size() {
    for (name, codec) in codecs() {
        for n in [0usize, 1, 2, 3, 63, 64, 65, 1000, 4099] {
            let bytes = codec.encode(&values(n), 3).expect("encode");
            let n64 = n as u64;
            let formula = match name {
                "f32" => 4 * n64,
                "bf16" | "fp16" => 2 * n64,
                "int8" => n64 + 4 * n64.div_ceil(64),
                "int4" => n64.div_ceil(2) + 4 * n64.div_ceil(32),
                "top-k" => 8 * if n == 0 { 0 } else { (n64).div_ceil(10).max(1) },
                "random-k" => 4 * if n == 0 { 0 } else { (n64).div_ceil(10).max(1) },
                _ => unreachable!(),
            };
            assert_eq!(bytes.len() as u64, formula, "{name}, n = {n}");
            assert_eq!(codec.encoded_len(n64), formula, "{name}, n = {n}");
            let back = codec.decode(&bytes, n64, 3).expect("decode");
            assert_eq!(back.len(), n, "{name}");
        }
    }
}

#[test]
fn round_trips_stay_within_each_codecs_error_bound() {
    let x = values(1000);
    let max_in_block = |i: usize, block: usize| {
        let start = i / block * block;
        x[start..(start + block).min(x.len())]
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()))
    };
    for (name, codec) in codecs() {
        let back = codec
            .decode(&codec.encode(&x, 9).expect("encode"), 1000, 9)
            .expect("decode");
        for (i, (&b, &v)) in back.iter().zip(&x).enumerate() {
            let bound = match name {
                "f32" => 0.0,
                "bf16" => v.abs() * 2f32.powi(-8),
                // Normal halves (|v| ≥ 2^-14) to 2^-11 relative, subnormal ones to 2^-25.
                "fp16" => (v.abs() * 2f32.powi(-11)).max(2f32.powi(-25)),
                // One step of the block's scale (and float32 rounding of q·s).
                "int8" => max_in_block(i, 64) / 127.0 * (1.0 + 1e-6),
                "int4" => max_in_block(i, 32) / 7.0 * (1.0 + 1e-6),
                _ => continue,
            };
            assert!(
                (b - v).abs() <= bound,
                "{name} value {i}: {b} for {v} (bound {bound})"
            );
        }
    }
}

#[test]
fn top_k_keeps_exactly_the_largest_magnitudes() {
    let x = values(1000);
    let back = TopK { fraction: 0.05 }
        .decode(
            &TopK { fraction: 0.05 }.encode(&x, 0).expect("encode"),
            1000,
            0,
        )
        .expect("decode");
    let kept: Vec<usize> = (0..1000).filter(|&i| back[i] != 0.0).collect();
    assert_eq!(kept.len(), 50);
    let smallest_kept = kept
        .iter()
        .map(|&i| x[i].abs())
        .fold(f32::INFINITY, f32::min);
    for i in 0..1000 {
        if back[i] != 0.0 {
            assert_eq!(back[i], x[i]);
        } else {
            assert!(
                x[i].abs() <= smallest_kept,
                "dropped {} above {smallest_kept}",
                x[i]
            );
        }
    }
}

#[test]
fn unbiased_codecs_average_to_the_input_over_seeds() {
    // Mean of M decodings against x, within 5 standard errors of each coordinate: stochastic
    // rounding's variance is at most s²/4, random-k's is x²(n/k − 1).
    let x: Vec<f32> = values(256);
    let draws = 4000u64;
    // Each codec with the standard deviation of one decoding of value i.
    type Case = (
        &'static str,
        Box<dyn CodecFunction>,
        Box<dyn Fn(usize) -> f64>,
    );
    let cases: Vec<Case> = vec![
        (
            "int8",
            Box::new(StochasticRounding { bits: 8, block: 64 }),
            Box::new(|i| f64::from(block_max(&values(256), i, 64)) / 127.0 / 2.0),
        ),
        (
            "int4",
            Box::new(StochasticRounding { bits: 4, block: 64 }),
            Box::new(|i| f64::from(block_max(&values(256), i, 64)) / 7.0 / 2.0),
        ),
        (
            "random-k",
            Box::new(RandomK { fraction: 0.25 }),
            Box::new(|i| f64::from(values(256)[i].abs()) * 3f64.sqrt()),
        ),
    ];
    for (name, codec, sd) in cases {
        let mut sums = vec![0f64; x.len()];
        for seed in 0..draws {
            let back = codec
                .decode(&codec.encode(&x, seed).expect("encode"), 256, seed)
                .expect("decode");
            sums.iter_mut()
                .zip(&back)
                .for_each(|(s, b)| *s += f64::from(*b));
        }
        let sds: Vec<f64> = (0..x.len()).map(&sd).collect();
        for (i, (sum, v)) in sums.iter().zip(&x).enumerate() {
            let mean = sum / draws as f64;
            let tolerance = 5.0 * sds[i] / (draws as f64).sqrt() + 1e-9;
            assert!(
                (mean - f64::from(*v)).abs() <= tolerance,
                "{name} value {i}: mean {mean} for {v} (tolerance {tolerance})"
            );
        }
    }
}

fn block_max(x: &[f32], i: usize, block: usize) -> f32 {
    let start = i / block * block;
    x[start..(start + block).min(x.len())]
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
}

#[test]
fn the_same_seed_decodes_what_it_encoded_and_another_does_not() {
    let x = values(500);
    let codec = RandomK { fraction: 0.1 };
    let expected = |seed| {
        let mut d = vec![0f32; 500];
        for i in codec.coordinates(500, seed) {
            d[i] = (f64::from(x[i]) * 10.0) as f32;
        }
        d
    };
    let bytes = codec.encode(&x, 11).expect("encode");
    assert_eq!(codec.decode(&bytes, 500, 11).expect("decode"), expected(11));
    let wrong = codec.decode(&bytes, 500, 12).expect("decode");
    assert_ne!(wrong, expected(11));
    assert_eq!(codec.coordinates(500, 11).len(), 50);
}

#[test]
fn bad_input_and_bad_bytes_are_clear_errors() {
    let int8 = StochasticRounding { bits: 8, block: 64 };
    let error = int8.encode(&[1.0, f32::NAN], 0).expect_err("NaN");
    assert!(
        error.to_string().contains("int8: value 1 is NaN"),
        "{error}"
    );
    let error = Float32.decode(&[0; 7], 2, 0).expect_err("short");
    assert!(
        error
            .to_string()
            .contains("7 bytes are not an encoding of 2 values (8 bytes)"),
        "{error}"
    );
    let error = Half(HalfKind::Fp16)
        .encode(&[1e6], 0)
        .expect_err("overflow");
    assert!(
        error.to_string().contains("beyond half precision's range"),
        "{error}"
    );
    let mut bytes = TopK { fraction: 0.5 }
        .encode(&[1.0, 2.0], 0)
        .expect("encode");
    bytes[0] = 9;
    let error = TopK { fraction: 0.5 }
        .decode(&bytes, 2, 0)
        .expect_err("index");
    assert!(error.to_string().contains("index 9 of 2 values"), "{error}");
    let plugin = plugin();
    assert!(plugin.new_codec("top-k", r#"{"fraction": 0}"#).is_err());
    assert!(plugin.new_codec("int8", r#"{"blocks": 8}"#).is_err());
}

//! Update codecs for fedpref, as one codec plugin. Each encodes a flat `f32` vector (a client's
//! update, or the change of the global adapter) into bytes, little-endian, with a size that is a
//! function of the number of values `n` alone:
//!
//! | component  | type                  | bytes for `n` values                   | bias      |
//! |------------|-----------------------|----------------------------------------|-----------|
//! | `f32`      | [`Float32`]           | `4n`                                   | lossless  |
//! | `bf16`     | [`Half`]              | `2n`                                   | biased    |
//! | `fp16`     | [`Half`]              | `2n`                                   | biased    |
//! | `int8`     | [`StochasticRounding`]| `n + 4⌈n/B⌉`                           | unbiased  |
//! | `int4`     | [`StochasticRounding`]| `⌈n/2⌉ + 4⌈n/B⌉`                       | unbiased  |
//! | `top-k`    | [`TopK`]              | `8k`, `k = max(1, ⌈f·n⌉)`              | biased    |
//! | `random-k` | [`RandomK`]           | `4k`, `k = max(1, ⌈f·n⌉)`              | unbiased  |
//!
//! (`B`: the block size, parameter `block`, default 64; `f`: parameter `fraction`, default
//! 0.01; `n = 0` encodes to no bytes.) Biased codecs lose a little of every update in the same
//! direction; the host's error feedback carries that into the next round. Every random draw
//! comes from the `seed` the host passes, which the decoding end shares.
//!
//! ```
//! let plugin = fedpref_codecs::plugin();
//! let int8 = plugin.new_codec("int8", "").unwrap();
//! let values = [0.5f32, -0.25, 0.125, 0.0];
//! let bytes = int8.encode(values.as_slice().into(), 7).into_result().unwrap();
//! assert_eq!(bytes.len() as u64, int8.encoded_len(4).into_result().unwrap()); // 4 + 4
//! let back = int8.decode(bytes.as_slice().into(), 4, 7).into_result().unwrap();
//! // One quantization step (0.5 / 127) at most from each value.
//! assert!(back.iter().zip(&values).all(|(b, v)| (b - v).abs() <= 0.5 / 127.0));
//! ```

mod float;
mod sparse;
mod stochastic;
#[cfg(test)]
mod tests;

use fedpref_plugin_api::{check_range, Params, Plugin, PluginError};
pub use float::{Float32, Half, HalfKind};
pub use sparse::{RandomK, TopK};
pub use stochastic::StochasticRounding;

/// The components this library provides.
pub fn plugin() -> Plugin {
    Plugin::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .codec("f32", "raw float32, lossless (4 bytes a value)", |p| {
            p.finish()?;
            Ok(Float32)
        })
        .codec(
            "bf16",
            "bfloat16, rounded to nearest even (2 bytes a value)",
            |p| {
                p.finish()?;
                Ok(Half(HalfKind::Bf16))
            },
        )
        .codec(
            "fp16",
            "IEEE half, rounded to nearest even (2 bytes a value)",
            |p| {
                p.finish()?;
                Ok(Half(HalfKind::Fp16))
            },
        )
        .codec(
            "int8",
            "8-bit stochastic rounding with a float32 scale per block (QSGD-style, unbiased)",
            |p| StochasticRounding::from_params(8, p),
        )
        .codec(
            "int4",
            "4-bit stochastic rounding with a float32 scale per block (unbiased)",
            |p| StochasticRounding::from_params(4, p),
        )
        .codec(
            "top-k",
            "the k largest magnitudes with their indices (Aji & Heafield 2017; biased)",
            |p| {
                Ok(TopK {
                    fraction: fraction(p)?,
                })
            },
        )
        .codec(
            "random-k",
            "k coordinates drawn from the shared seed, rescaled by n/k (unbiased)",
            |p| {
                Ok(RandomK {
                    fraction: fraction(p)?,
                })
            },
        )
}

/// `fraction` in (0, 1], default 0.01.
fn fraction(params: &Params) -> Result<f64, PluginError> {
    let f = check_range(
        "fraction",
        params.f64_or("fraction", 0.01)?,
        f64::MIN_POSITIVE,
        1.0,
    )?;
    params.finish()?;
    Ok(f)
}

/// `k = max(1, ⌈f·n⌉)` for `n > 0`, 0 for `n = 0`.
fn kept(fraction: f64, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    ((fraction * n as f64).ceil() as u64).clamp(1, n)
}

/// `InvalidInput` unless `bytes` has `expected` bytes.
fn check_len(codec: &str, bytes: &[u8], expected: u64, n: u64) -> Result<(), PluginError> {
    if bytes.len() as u64 == expected {
        return Ok(());
    }
    Err(PluginError::invalid_input(format!(
        "{codec}: {} bytes are not an encoding of {n} values ({expected} bytes)",
        bytes.len()
    )))
}

/// `InvalidInput` naming the first non-finite value.
fn check_finite(codec: &str, values: &[f32]) -> Result<(), PluginError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(PluginError::invalid_input(format!(
            "{codec}: value {i} is {}",
            values[i]
        ))),
    }
}

fedpref_plugin_api::export_plugin!(plugin);

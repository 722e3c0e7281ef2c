//! Compressed communication: the codec plugins that turn a client's update (uplink) and the
//! change of the global adapter (downlink) into bytes, error feedback for the biased ones, and
//! the exact byte counts.
//!
//! **Uplink.** A client that trained from `start` sends `Δ = params − start`, encoded. With a
//! biased codec and error feedback (Seide et al. 2014; Karimireddy et al. 2019, EF-SGD) it sends
//! `Δ + e` instead and keeps `e ← (Δ + e) − decode(encode(Δ + e))`, so what a round drops is sent
//! in a later one. The server decodes `Δ̂` and hands the aggregator `global + Δ̂`, so every
//! aggregator runs unchanged.
//!
//! **Downlink.** The server keeps the model the clients hold, `x̂`, starting from the seeded
//! initial adapter every client can build. Each round it broadcasts `encode(global − x̂)` and
//! both ends set `x̂ ← x̂ + decode(…)`: what the codec drops stays in `global − x̂` and is sent
//! later (error feedback on the server). Clients train from `x̂`. A client catches up on every
//! broadcast since it last took part, and those are the bytes it is counted.
//!
//! Without a codec (`"none"`, the default) clients receive the global adapter and send their
//! parameters as raw float32, as before codecs existed.

mod settings;

use std::time::Instant;

pub use settings::{CompressionSection, NO_CODEC};

use crate::{plugin_host::CodecHandle, Result};

/// One encoding and its decoding: the bytes sent, what the receiver reconstructs, and the time
/// each side took.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmission {
    /// The encoded bytes, as sent.
    pub bytes: Vec<u8>,
    /// What the receiver decodes.
    pub decoded: Vec<f32>,
    /// Seconds encoding.
    pub encode_seconds: f64,
    /// Seconds decoding.
    pub decode_seconds: f64,
}

/// Sends `values` through `codec` with `seed`. With `residual` (error feedback), what is sent is
/// `values + residual`, and the residual becomes what that encoding dropped.
///
/// # Errors
/// Plugin errors (a codec that fails, or breaks its contract).
pub fn transmit(
    codec: &CodecHandle,
    values: &[f32],
    residual: Option<&mut Vec<f32>>,
    seed: u64,
) -> Result<Transmission> {
    let sent: Vec<f32> = match &residual {
        Some(e) if !e.is_empty() => values.iter().zip(e.iter()).map(|(v, e)| v + e).collect(),
        _ => values.to_vec(),
    };
    let started = Instant::now();
    let bytes = codec.encode(&sent, seed)?;
    let encode_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let decoded = codec.decode(&bytes, sent.len(), seed)?;
    let decode_seconds = started.elapsed().as_secs_f64();
    if let Some(e) = residual {
        *e = sent.iter().zip(&decoded).map(|(s, d)| s - d).collect();
    }
    Ok(Transmission {
        bytes,
        decoded,
        encode_seconds,
        decode_seconds,
    })
}

/// `a − b`, elementwise.
pub fn difference(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(a, b)| a - b).collect()
}

/// `a + b`, elementwise.
pub fn sum(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(a, b)| a + b).collect()
}

/// `‖v‖₂`, accumulated in f64.
pub fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests;

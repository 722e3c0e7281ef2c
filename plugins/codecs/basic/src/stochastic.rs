//! Stochastic rounding to `b`-bit integers with a float32 scale per block of values (QSGD-style
//! quantization, Alistarh et al. 2017, with max-scaling per block).
//!
//! For a block `x` with `s = max|x| / L` (`L = 2^(b−1) − 1`: 127 for 8 bits, 7 for 4), each value
//! becomes the integer `q = ⌊x/s + u⌋`, `u ~ U[0, 1)`, so `q·s` is `x` in expectation and within
//! one step `s` of it. Layout: the blocks' scales (float32), then the codes `q + L` packed `b`
//! bits each, low bits first.

use fedpref_plugin_api::{CodecFunction, CodecSpec, Params, PluginError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{check_finite, check_len};

/// `b`-bit stochastic rounding with a scale per block of `block` values.
#[derive(Debug, Clone, Copy)]
pub struct StochasticRounding {
    /// Bits per value: 8 or 4.
    pub bits: u32,
    /// Values per scale.
    pub block: u64,
}

impl StochasticRounding {
    /// `bits`-bit rounding with parameter `block` (default 64).
    ///
    /// # Errors
    /// `InvalidParams` for a block outside 1..=2^20 or an unknown key.
    pub fn from_params(bits: u32, params: &Params) -> Result<Self, PluginError> {
        let block = params.whole_or("block", 64u64, 1..=1 << 20)?;
        params.finish()?;
        Ok(Self { bits, block })
    }

    fn name(&self) -> String {
        format!("int{}", self.bits)
    }

    /// L: the largest code magnitude.
    fn levels(&self) -> f64 {
        f64::from((1u32 << (self.bits - 1)) - 1)
    }

    fn blocks(&self, n: u64) -> u64 {
        n.div_ceil(self.block)
    }

    fn code_bytes(&self, n: u64) -> u64 {
        (n * u64::from(self.bits)).div_ceil(8)
    }
}

impl CodecFunction for StochasticRounding {
    fn spec(&self) -> CodecSpec {
        CodecSpec {
            lossless: false,
            unbiased: true,
        }
    }

    fn encoded_len(&self, n: u64) -> u64 {
        4 * self.blocks(n) + self.code_bytes(n)
    }

    fn encode(&self, values: &[f32], seed: u64) -> Result<Vec<u8>, PluginError> {
        check_finite(&self.name(), values)?;
        let levels = self.levels();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut scales = Vec::new();
        let mut codes = Vec::with_capacity(values.len());
        for block in values.chunks(self.block as usize) {
            let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = max / levels as f32;
            scales.extend_from_slice(&scale.to_le_bytes());
            for &v in block {
                let q = if scale > 0.0 {
                    let x = (f64::from(v) / f64::from(scale)).clamp(-levels, levels);
                    (x + rng.random::<f64>()).floor().min(levels)
                } else {
                    0.0
                };
                codes.push((q + levels) as u8);
            }
        }
        scales.extend(pack(&codes, self.bits));
        Ok(scales)
    }

    fn decode(&self, bytes: &[u8], n: u64, _seed: u64) -> Result<Vec<f32>, PluginError> {
        check_len(&self.name(), bytes, self.encoded_len(n), n)?;
        let (scales, codes) = bytes.split_at(4 * self.blocks(n) as usize);
        let levels = self.levels();
        let codes = unpack(codes, self.bits, n as usize);
        Ok(codes
            .chunks(self.block as usize)
            .zip(scales.chunks_exact(4))
            .flat_map(|(block, scale)| {
                let scale = f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]);
                block
                    .iter()
                    .map(move |&c| ((f64::from(c) - levels) * f64::from(scale)) as f32)
            })
            .collect())
    }
}

/// `codes` (each below 2^bits) packed `bits` each, low bits first; `bits` divides 8.
fn pack(codes: &[u8], bits: u32) -> Vec<u8> {
    let per_byte = (8 / bits) as usize;
    codes
        .chunks(per_byte)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0u8, |byte, (k, &c)| byte | (c << (k as u32 * bits)))
        })
        .collect()
}

/// The first `n` codes of `bytes` packed by [`pack`].
fn unpack(bytes: &[u8], bits: u32, n: usize) -> Vec<u8> {
    let per_byte = (8 / bits) as usize;
    let mask = ((1u16 << bits) - 1) as u8;
    bytes
        .iter()
        .flat_map(|&byte| (0..per_byte).map(move |k| (byte >> (k as u32 * bits)) & mask))
        .take(n)
        .collect()
}

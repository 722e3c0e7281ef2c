//! Codecs that keep every value: raw float32, and bfloat16 or IEEE half rounded to nearest.

use fedpref_plugin_api::{CodecFunction, CodecSpec, PluginError};
use half::{bf16, f16};

use crate::{check_finite, check_len};

/// Raw little-endian float32: `4n` bytes, lossless.
#[derive(Debug, Clone, Copy)]
pub struct Float32;

impl CodecFunction for Float32 {
    fn spec(&self) -> CodecSpec {
        CodecSpec {
            lossless: true,
            unbiased: true,
        }
    }

    fn encoded_len(&self, n: u64) -> u64 {
        4 * n
    }

    fn encode(&self, values: &[f32], _seed: u64) -> Result<Vec<u8>, PluginError> {
        Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn decode(&self, bytes: &[u8], n: u64, _seed: u64) -> Result<Vec<f32>, PluginError> {
        check_len("f32", bytes, 4 * n, n)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Which 16-bit float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfKind {
    /// bfloat16: float32's exponent, 8 bits of significand (relative error ≤ 2⁻⁸).
    Bf16,
    /// IEEE binary16: 11 bits of significand (relative error ≤ 2⁻¹¹) from 6.1e-5 to 65504,
    /// absolute error ≤ 2⁻²⁵ below.
    Fp16,
}

/// A 16-bit float per value, rounded to nearest even: `2n` bytes.
#[derive(Debug, Clone, Copy)]
pub struct Half(pub HalfKind);

impl Half {
    fn name(&self) -> &'static str {
        match self.0 {
            HalfKind::Bf16 => "bf16",
            HalfKind::Fp16 => "fp16",
        }
    }
}

impl CodecFunction for Half {
    fn spec(&self) -> CodecSpec {
        CodecSpec {
            lossless: false,
            unbiased: false,
        }
    }

    fn encoded_len(&self, n: u64) -> u64 {
        2 * n
    }

    fn encode(&self, values: &[f32], _seed: u64) -> Result<Vec<u8>, PluginError> {
        check_finite(self.name(), values)?;
        let mut bytes = Vec::with_capacity(2 * values.len());
        for (i, &v) in values.iter().enumerate() {
            let bits = match self.0 {
                HalfKind::Bf16 => bf16::from_f32(v).to_bits(),
                HalfKind::Fp16 => {
                    let h = f16::from_f32(v);
                    if h.is_infinite() {
                        return Err(PluginError::invalid_input(format!(
                            "fp16: value {i} = {v} is beyond half precision's range (65504)"
                        )));
                    }
                    h.to_bits()
                }
            };
            bytes.extend_from_slice(&bits.to_le_bytes());
        }
        Ok(bytes)
    }

    fn decode(&self, bytes: &[u8], n: u64, _seed: u64) -> Result<Vec<f32>, PluginError> {
        check_len(self.name(), bytes, 2 * n, n)?;
        Ok(bytes
            .chunks_exact(2)
            .map(|c| {
                let bits = u16::from_le_bytes([c[0], c[1]]);
                match self.0 {
                    HalfKind::Bf16 => bf16::from_bits(bits).to_f32(),
                    HalfKind::Fp16 => f16::from_bits(bits).to_f32(),
                }
            })
            .collect())
    }
}

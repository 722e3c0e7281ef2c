//! Rotary position embeddings, differentiable (composed of candle ops that have backward passes).
//!
//! For position `p` and pair frequency `f_i = theta^(-2i/d)`, a pair `(x1, x2)` becomes
//! `(x1 cos(p f_i) - x2 sin(p f_i), x1 sin(p f_i) + x2 cos(p f_i))`. Two layouts pair the
//! features differently:
//! - [`RopeStyle::Half`] (GPT-NeoX, Hugging Face checkpoints): pair `i` is `(x[i], x[i + d/2])`;
//! - [`RopeStyle::Interleaved`] (GPT-J, GGUF llama files, whose q/k rows llama.cpp permuted):
//!   pair `i` is `(x[2i], x[2i + 1])`.
//!
//! The GGUF loader un-permutes llama q/k weights ([`super::gguf::unpermute_rows`]) so the decoder
//! always runs [`RopeStyle::Half`] on Hugging Face layouts, and LoRA adapters keep PEFT's layout;
//! `Interleaved` is kept for raw GGUF layouts and as the check of that un-permutation.
//! candle-nn's fused `rope`/`rope_i` have no backward pass and are not used here.

use candle_core::{DType, Device, Tensor, D};

use super::config::ModelConfig;
use crate::Result;

/// Which features RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// `(x[i], x[i + d/2])` pairs: Hugging Face / NeoX layout.
    Half,
    /// `(x[2i], x[2i + 1])` pairs: GGUF llama layout.
    Interleaved,
}

/// Precomputed `cos`/`sin` tables, `(max_positions, head_dim / 2)`.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    style: RopeStyle,
}

/// Inverse frequencies `theta^(-2i/d)`, `i < d/2`, with Llama 3 scaling when configured.
pub fn inverse_frequencies(cfg: &ModelConfig) -> Vec<f64> {
    let d = cfg.head_dim;
    let base: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / d as f64))
        .collect();
    let Some(s) = &cfg.rope_scaling else {
        return base;
    };
    let old = s.original_max_position_embeddings as f64;
    let low_wavelen = old / s.low_freq_factor;
    let high_wavelen = old / s.high_freq_factor;
    base.into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / s.factor
            } else {
                let smooth =
                    (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * f / s.factor + smooth * f
            }
        })
        .collect()
}

impl Rope {
    /// Builds the tables for `cfg.max_position_embeddings` positions in `dtype`.
    ///
    /// # Errors
    /// Tensor allocation errors.
    pub fn new(cfg: &ModelConfig, style: RopeStyle, dtype: DType, device: &Device) -> Result<Self> {
        let inv = inverse_frequencies(cfg);
        let half = inv.len();
        let n = cfg.max_position_embeddings;
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for p in 0..n {
            for f in &inv {
                let angle = p as f64 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (n, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (n, half), device)?.to_dtype(dtype)?;
        Ok(Self { cos, sin, style })
    }

    /// The layout this table applies.
    pub fn style(&self) -> RopeStyle {
        self.style
    }

    /// Rotates `x` of shape `(batch, heads, seq, head_dim)` whose first position is `offset`.
    ///
    /// # Errors
    /// Shape errors, or `offset + seq` past the table.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (b, h, s, d) = x.dims4()?;
        let half = d / 2;
        let cos = self.cos.narrow(0, offset, s)?;
        let sin = self.sin.narrow(0, offset, s)?;
        Ok(match self.style {
            RopeStyle::Half => {
                let x1 = x.narrow(D::Minus1, 0, half)?;
                let x2 = x.narrow(D::Minus1, half, half)?;
                let r1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
                let r2 = (x1.broadcast_mul(&sin)? + x2.broadcast_mul(&cos)?)?;
                Tensor::cat(&[r1, r2], D::Minus1)?
            }
            RopeStyle::Interleaved => {
                let xp = x.reshape((b, h, s, half, 2))?;
                let x1 = xp.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
                let x2 = xp.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
                let r1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
                let r2 = (x1.broadcast_mul(&sin)? + x2.broadcast_mul(&cos)?)?;
                Tensor::stack(&[r1, r2], D::Minus1)?.reshape((b, h, s, d))?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::tiny_config;

    #[test]
    fn half_style_matches_candle_fused_rope() {
        let cfg = tiny_config();
        let dev = Device::Cpu;
        let rope = Rope::new(&cfg, RopeStyle::Half, DType::F32, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 5, cfg.head_dim), &dev).unwrap();
        let ours = rope.apply(&x, 2).unwrap();
        let cos = rope.cos.narrow(0, 2, 5).unwrap();
        let sin = rope.sin.narrow(0, 2, 5).unwrap();
        let fused = candle_nn::rotary_emb::rope(&x, &cos, &sin).unwrap();
        let fused_i = candle_nn::rotary_emb::rope_i(&x, &cos, &sin).unwrap();
        let diff = (ours - fused).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let rope_i = Rope::new(&cfg, RopeStyle::Interleaved, DType::F32, &dev).unwrap();
        let ours_i = rope_i.apply(&x, 2).unwrap();
        let diff = (ours_i - fused_i)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }

    #[test]
    fn rope_has_a_gradient() {
        let cfg = tiny_config();
        let dev = Device::Cpu;
        for style in [RopeStyle::Half, RopeStyle::Interleaved] {
            let rope = Rope::new(&cfg, style, DType::F64, &dev).unwrap();
            let x = candle_core::Var::randn(0f64, 1.0, (1, 2, 3, cfg.head_dim), &dev).unwrap();
            let w = Tensor::randn(0f64, 1.0, (1, 2, 3, cfg.head_dim), &dev).unwrap();
            let loss = (rope.apply(&x, 1).unwrap() * &w)
                .unwrap()
                .sum_all()
                .unwrap();
            let g = loss.backward().unwrap();
            let gx = g.get(&x).expect("rope must pass a gradient");
            // RoPE is linear and orthogonal: d/dx <R x, w> = R^T w = rope with -sin.
            let back = Rope {
                cos: rope.cos.clone(),
                sin: rope.sin.neg().unwrap(),
                style,
            };
            let expect = back.apply(&w, 1).unwrap();
            let diff = (gx - expect).unwrap().abs().unwrap().max_all().unwrap();
            assert!(diff.to_scalar::<f64>().unwrap() < 1e-12, "{style:?}");
        }
    }
}

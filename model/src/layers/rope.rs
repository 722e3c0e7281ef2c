//! Rotary position embeddings, differentiable (composed of candle ops that have backward passes).
//!
//! For position `p` and pair frequency `f_i = theta^(-2i/d)`, a pair `(x1, x2)` becomes
//! `(x1 cos(p f_i) - x2 sin(p f_i), x1 sin(p f_i) + x2 cos(p f_i))`. Two layouts pair the
//! features differently:
//! - [`RopeStyle::Half`] (GPT-NeoX, Hugging Face checkpoints): pair `i` is `(x[i], x[i + d/2])`;
//! - [`RopeStyle::Interleaved`] (GPT-J, GGUF llama files, whose q/k rows llama.cpp permuted):
//!   pair `i` is `(x[2i], x[2i + 1])`.
//!
//! The GGUF loader un-permutes llama q/k weights ([`crate::io::gguf::unpermute_rows`]) so the decoder
//! always runs [`RopeStyle::Half`] on Hugging Face layouts, and LoRA adapters keep PEFT's layout;
//! `Interleaved` is kept for raw GGUF layouts and as the check of that un-permutation.
//! [`Rope::apply`] runs the fused op of [`crate::kernels::cpu::rope`] on f32 CPU tensors (one
//! pass, backward = rotation by the opposite angle); [`Rope::apply_plain`] is its composed twin.
//! candle-nn's fused `rope`/`rope_i` have no backward pass and are not used here.

use candle_core::{DType, Device, Tensor, D};

use crate::config::ModelConfig;
pub use crate::kernels::cpu::rope::RopeStyle;
use crate::kernels::cpu::rope::{rope, rope_plain, rope_supported};
use crate::kernels::host_constants::host_constant;
use crate::Result;

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
        let (_, _, s, _) = x.dims4()?;
        if rope_supported(x, &self.cos, offset + s)? {
            let cos = self.cos.narrow(0, offset, s)?;
            let sin = self.sin.narrow(0, offset, s)?;
            return rope(x, &cos, &sin, self.style);
        }
        self.apply_plain(x, offset)
    }

    /// Rotates `x` `(batch, heads, seq, d)` where row `r`, column `c` sits at position
    /// `positions[r * seq + c]` (left-padded batches); composed ops.
    ///
    /// # Errors
    /// Shape errors, or a position past the table.
    pub fn apply_at(&self, x: &Tensor, positions: &[u32]) -> Result<Tensor> {
        let (b, _, s, d) = x.dims4()?;
        let half = d / 2;
        let key: Vec<usize> = positions.iter().map(|&p| p as usize).collect();
        let idx = host_constant("rope-positions", &key, DType::U32, x.device(), || {
            Ok(Tensor::from_slice(positions, b * s, &Device::Cpu)?)
        })?;
        let cos = self.cos.index_select(&idx, 0)?.reshape((b, 1, s, half))?;
        let sin = self.sin.index_select(&idx, 0)?.reshape((b, 1, s, half))?;
        let rot = |x1: &Tensor, x2: &Tensor| -> Result<(Tensor, Tensor)> {
            Ok((
                (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?,
                (x1.broadcast_mul(&sin)? + x2.broadcast_mul(&cos)?)?,
            ))
        };
        Ok(match self.style {
            RopeStyle::Half => {
                let (r1, r2) = rot(
                    &x.narrow(D::Minus1, 0, half)?,
                    &x.narrow(D::Minus1, half, half)?,
                )?;
                Tensor::cat(&[r1, r2], D::Minus1)?
            }
            RopeStyle::Interleaved => {
                let h = x.dim(1)?;
                let xp = x.reshape((b, h, s, half, 2))?;
                let x1 = xp.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
                let x2 = xp.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
                let (r1, r2) = rot(&x1, &x2)?;
                Tensor::stack(&[r1, r2], D::Minus1)?.reshape((b, h, s, d))?
            }
        })
    }

    /// [`Self::apply_at`] through the fused op where [`rope_supported`] allows (training on a
    /// shared-prefix batch, whose rows restart their answers' positions).
    ///
    /// # Errors
    /// Shape errors, or a position past the table.
    pub fn apply_rows(&self, x: &Tensor, positions: &[u32]) -> Result<Tensor> {
        let needed = positions.iter().max().map_or(0, |&p| p as usize + 1);
        if !rope_supported(x, &self.cos, needed)? {
            return self.apply_at(x, positions);
        }
        let idx = Tensor::from_slice(positions, positions.len(), x.device())?;
        let cos = self.cos.index_select(&idx, 0)?;
        let sin = self.sin.index_select(&idx, 0)?;
        rope(x, &cos, &sin, self.style)
    }

    /// The composed twin of [`Self::apply`] (narrow, multiply, cat / stack).
    ///
    /// # Errors
    /// Shape errors, or `offset + seq` past the table.
    pub fn apply_plain(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (_, _, s, _) = x.dims4()?;
        let cos = self.cos.narrow(0, offset, s)?;
        let sin = self.sin.narrow(0, offset, s)?;
        rope_plain(x, &cos, &sin, self.style)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tiny_config;

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

    #[test]
    fn fast_path_equals_plain_twin_forward_and_gradient() {
        let cfg = tiny_config();
        let dev = Device::Cpu;
        for style in [RopeStyle::Half, RopeStyle::Interleaved] {
            let rope = Rope::new(&cfg, style, DType::F32, &dev).unwrap();
            let x = candle_core::Var::randn(0f32, 1.0, (2, 3, 5, cfg.head_dim), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (2, 3, 5, cfg.head_dim), &dev).unwrap();
            let fast = rope.apply(&x, 3).unwrap();
            let plain = rope.apply_plain(&x, 3).unwrap();
            let max = |t: Tensor| -> f32 {
                t.abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            assert!(max((&fast - &plain).unwrap()) < 1e-6, "{style:?}");
            let gf = (fast * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gp = (plain * &w).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(
                max((gf.get(&x).unwrap() - gp.get(&x).unwrap()).unwrap()) < 1e-6,
                "{style:?}"
            );
        }
    }

    #[test]
    fn per_row_positions_match_the_composed_twin_and_its_gradient() {
        let cfg = tiny_config();
        let dev = Device::Cpu;
        let positions: Vec<u32> = vec![0, 1, 2, 3, 2, 3, 5, 6, 7, 8, 9, 10];
        for style in [RopeStyle::Half, RopeStyle::Interleaved] {
            let rope = Rope::new(&cfg, style, DType::F32, &dev).unwrap();
            let x = candle_core::Var::randn(0f32, 1.0, (2, 3, 6, cfg.head_dim), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (2, 3, 6, cfg.head_dim), &dev).unwrap();
            let fast = rope.apply_rows(&x, &positions).unwrap();
            let plain = rope.apply_at(&x, &positions).unwrap();
            assert!(crate::testing::max_diff(&fast, &plain) < 1e-6, "{style:?}");
            let gf = (fast * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gp = (plain * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let d = crate::testing::max_diff(gf.get(&x).unwrap(), gp.get(&x).unwrap());
            assert!(d < 1e-6, "{style:?}: {d}");
        }
    }
}

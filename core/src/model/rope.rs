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
//! [`Rope::apply`] runs a custom op on f32 CPU tensors (one pass, backward = rotation by the
//! opposite angle); [`Rope::apply_plain`] is its composed twin.
//! candle-nn's fused `rope`/`rope_i` have no backward pass and are not used here.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::config::ModelConfig;
use super::host_constants::host_constant;
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
        let (_, _, s, d) = x.dims4()?;
        if x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.cos.dtype() == DType::F32
            && d == 2 * self.cos.dim(1)?
            && offset + s <= self.cos.dim(0)?
        {
            let cos: Vec<f32> = self.cos.narrow(0, offset, s)?.flatten_all()?.to_vec1()?;
            let sin: Vec<f32> = self.sin.narrow(0, offset, s)?.flatten_all()?.to_vec1()?;
            let op = RopeOp {
                cos: Arc::new(cos),
                sin: Arc::new(sin),
                style: self.style,
                inverse: false,
            };
            return Ok(x.contiguous()?.apply_op1(op)?);
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

    /// The composed twin of [`Self::apply`] (narrow, multiply, cat / stack).
    ///
    /// # Errors
    /// Shape errors, or `offset + seq` past the table.
    pub fn apply_plain(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
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

/// The fast path: tables for the `seq` positions of this call, `(seq, d/2)` each. The backward
/// is the same rotation by the opposite angle (`inverse`), RoPE being orthogonal.
struct RopeOp {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    style: RopeStyle,
    inverse: bool,
}

impl CustomOp1 for RopeOp {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, _, s, d) = layout.shape().dims4()?;
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("rope: input must be f32")
        };
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("rope: input must be contiguous")
        };
        let half = d / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut out = vec![0f32; b - a];
        // One chunk per (batch, head): s rows of d.
        out.par_chunks_mut(s * d)
            .zip(data[a..b].par_chunks(s * d))
            .for_each(|(o, x)| {
                for p in 0..s {
                    let (cos, sin) = (
                        &self.cos[p * half..(p + 1) * half],
                        &self.sin[p * half..(p + 1) * half],
                    );
                    let (xr, or) = (&x[p * d..(p + 1) * d], &mut o[p * d..(p + 1) * d]);
                    for i in 0..half {
                        let (c, sn) = (cos[i], sign * sin[i]);
                        let (i1, i2) = match self.style {
                            RopeStyle::Half => (i, i + half),
                            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                        };
                        let (x1, x2) = (xr[i1], xr[i2]);
                        or[i1] = x1 * c - x2 * sn;
                        or[i2] = x1 * sn + x2 * c;
                    }
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let op = RopeOp {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            style: self.style,
            inverse: !self.inverse,
        };
        Ok(Some(grad_res.contiguous()?.apply_op1(op)?))
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
}

//! Causal grouped-query self-attention, differentiable:
//! `softmax(q k^T / sqrt(d) + causal mask) v`, with RoPE on `q`, `k`, for `x` `(batch, seq, hidden)`.
//! The core is [`crate::kernels::cpu::attention::causal_attention`] (custom op with a hand-written
//! backward, and a composed twin).
//!
//! GQA without copying the shared heads: query head `h` reads KV head `h / group` in place.
//! Right padding needs no extra mask: causal attention never lets a real token see a later
//! padding token.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::ModelConfig;
use crate::kernels::cpu::attention::{causal_attention, causal_attention_left_padded};
use crate::layers::context::ForwardCtx;
use crate::layers::linear::Linear;
use crate::layers::lora::{Adapter, TargetModule};
use crate::layers::rope::Rope;
use crate::Result;

/// `q_proj`, `k_proj`, `v_proj`, `o_proj` of one layer.
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// Loads the four projections under `vb` (`self_attn`).
    ///
    /// # Errors
    /// A missing tensor or wrong shape.
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            q_proj: Linear::load(vb.pp("q_proj"), h, cfg.q_size(), cfg.qkv_bias)?,
            k_proj: Linear::load(vb.pp("k_proj"), h, cfg.kv_size(), cfg.qkv_bias)?,
            v_proj: Linear::load(vb.pp("v_proj"), h, cfg.kv_size(), cfg.qkv_bias)?,
            o_proj: Linear::load(vb.pp("o_proj"), cfg.q_size(), h, cfg.o_bias)?,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
        })
    }

    /// The projection named by `module` (attention modules only).
    pub fn projection_mut(&mut self, module: TargetModule) -> Option<&mut Linear> {
        match module {
            TargetModule::QProj => Some(&mut self.q_proj),
            TargetModule::KProj => Some(&mut self.k_proj),
            TargetModule::VProj => Some(&mut self.v_proj),
            TargetModule::OProj => Some(&mut self.o_proj),
            _ => None,
        }
    }

    /// The projection named by `module` (attention modules only).
    pub fn projection(&self, module: TargetModule) -> Option<&Linear> {
        match module {
            TargetModule::QProj => Some(&self.q_proj),
            TargetModule::KProj => Some(&self.k_proj),
            TargetModule::VProj => Some(&self.v_proj),
            TargetModule::OProj => Some(&self.o_proj),
            _ => None,
        }
    }

    /// Attaches the adapter's branches for `layer` (or removes them with `None`).
    pub fn set_adapter(&mut self, adapter: Option<&Adapter>, layer: usize) {
        for m in [
            TargetModule::QProj,
            TargetModule::KProj,
            TargetModule::VProj,
            TargetModule::OProj,
        ] {
            let branch = adapter.and_then(|a| a.branch(layer, m));
            if let Some(p) = self.projection_mut(m) {
                p.set_lora(branch);
            }
        }
    }

    /// A copy with LoRA merged into the frozen weights.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn merged(&self) -> Result<Self> {
        Ok(Self {
            q_proj: self.q_proj.merged()?,
            k_proj: self.k_proj.merged()?,
            v_proj: self.v_proj.merged()?,
            o_proj: self.o_proj.merged()?,
            ..self.clone()
        })
    }

    /// `x` `(batch, seq, hidden)` at positions `offset..offset + seq` -> `(batch, seq, hidden)`.
    /// With `cache`,
    /// the keys/values of earlier positions are read from it and this call's are appended.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        offset: usize,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        ctx: &ForwardCtx,
    ) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let (nh, nkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self
            .q_proj
            .forward(x, ctx)?
            .reshape((b, s, nh, d))?
            .transpose(1, 2)?;
        let k = self
            .k_proj
            .forward(x, ctx)?
            .reshape((b, s, nkv, d))?
            .transpose(1, 2)?;
        let v = self
            .v_proj
            .forward(x, ctx)?
            .reshape((b, s, nkv, d))?
            .transpose(1, 2)?;
        let (q, mut k) = match (ctx.left_pads, ctx.packing) {
            (_, Some(packing)) => (
                rope.apply_rows(&q.contiguous()?, &packing.positions)?,
                rope.apply_rows(&k.contiguous()?, &packing.positions)?,
            ),
            (None, None) => (
                rope.apply(&q.contiguous()?, offset)?,
                rope.apply(&k.contiguous()?, offset)?,
            ),
            (Some(pads), None) => {
                // Row r's column c is position offset + c - pads[r] (0 on its padding).
                let positions: Vec<u32> = pads
                    .iter()
                    .flat_map(|&p| (0..s).map(move |c| (offset + c).saturating_sub(p) as u32))
                    .collect();
                (
                    rope.apply_at(&q.contiguous()?, &positions)?,
                    rope.apply_at(&k.contiguous()?, &positions)?,
                )
            }
        };
        let mut v = v.contiguous()?;
        if let Some(cache) = cache {
            if let Some((ck, cv)) = cache.as_ref() {
                k = Tensor::cat(&[ck, &k], 2)?;
                v = Tensor::cat(&[cv, &v], 2)?;
            }
            *cache = Some((k.clone(), v.clone()));
        }
        // (b, s, nh, d) out of the fused op flattens to (b, s, nh * d) without a copy.
        let scale = 1.0 / (d as f64).sqrt();
        let y = match (ctx.left_pads, ctx.packing) {
            (_, Some(packing)) => causal_attention(&q, &k, &v, scale, &packing.hidden)?,
            (None, None) => causal_attention(&q, &k, &v, scale, &[])?,
            (Some(pads), None) => causal_attention_left_padded(&q, &k, &v, scale, pads)?,
        }
        .reshape((b, s, nh * d))?;
        self.o_proj.forward(&y, ctx)
    }
}

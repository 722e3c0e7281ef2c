//! A frozen linear projection with an optional LoRA branch:
//! `y = x W^T + b + scaling * (dropout(x) A^T) B^T`, `x` `(..., in)` -> `y` `(..., out)`.
//!
//! `W` and `b` are plain tensors (no gradient is ever computed for them); `A`, `B` come from an
//! [`super::lora::Adapter`]'s vars. Loaded by the attention and MLP layers from Hugging Face
//! names (`q_proj.weight`, `q_proj.bias`).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::context::ForwardCtx;
use super::frozen_matmul::frozen_matmul;
use super::lora::LoraBranch;
use crate::Result;

/// A frozen projection, optionally carrying a LoRA branch.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<LoraBranch>,
}

impl Linear {
    /// Loads `weight` `(out, in)` and, when `bias`, `bias` `(out,)`.
    ///
    /// # Errors
    /// A missing tensor or wrong shape, named by candle's VarBuilder.
    pub fn load(
        vb: VarBuilder,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = vb.get((out_features, in_features), "weight")?;
        let bias = if bias {
            Some(vb.get(out_features, "bias")?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            lora: None,
        })
    }

    /// Wraps existing tensors.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            lora: None,
        }
    }

    /// The frozen weight `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The frozen bias `(out,)`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Attaches (or with `None`, removes) a LoRA branch.
    pub fn set_lora(&mut self, lora: Option<LoraBranch>) {
        self.lora = lora;
    }

    /// The attached LoRA branch.
    pub fn lora(&self) -> Option<&LoraBranch> {
        self.lora.as_ref()
    }

    /// Applies the projection to `x` `(..., in)`; the LoRA branch only when `ctx.adapter`.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn forward(&self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let mut y = frozen_matmul(x, &self.weight)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let (Some(l), true) = (&self.lora, ctx.adapter) {
            let xd = ctx.dropout(x, l.dropout)?;
            let x2 = xd.reshape(((), l.a.dim(1)?))?;
            let low = x2.matmul(&l.a.t()?)?.matmul(&l.b.t()?)?;
            let low = (low * l.scaling)?.reshape(y.shape())?;
            y = (y + low)?;
        }
        Ok(y)
    }

    /// The same projection with the LoRA branch folded in: `W + scaling * B A`, no branch.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn merged(&self) -> Result<Self> {
        let weight = match &self.lora {
            None => self.weight.clone(),
            Some(l) => {
                let delta = (l.b.matmul(&l.a)? * l.scaling)?.to_dtype(self.weight.dtype())?;
                (&self.weight + delta)?.detach()
            }
        };
        Ok(Self {
            weight,
            bias: self.bias.clone(),
            lora: None,
        })
    }
}

//! A frozen linear projection with an optional LoRA branch:
//! `y = x W^T + b + scaling * (dropout(x) A^T) B^T`, `x` `(..., in)` -> `y` `(..., out)`.
//!
//! `W` and `b` are plain tensors (no gradient is ever computed for them); `A`, `B` come from an
//! [`crate::layers::lora::Adapter`]'s vars. Loaded by the attention and MLP layers from Hugging Face
//! names (`q_proj.weight`, `q_proj.bias`).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::kernels::cpu::lora_linear::{lora_linear, lora_linear_supported};
use crate::kernels::frozen_matmul::frozen_matmul;
use crate::layers::context::ForwardCtx;
use crate::layers::lora::LoraBranch;
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

    /// The LoRA branch this pass adds, if any: none without `ctx.adapter`, its weights
    /// detached from the adapter's vars with `ctx.detached`.
    fn active_lora(&self, ctx: &ForwardCtx) -> Option<std::borrow::Cow<'_, LoraBranch>> {
        let l = self.lora.as_ref().filter(|_| ctx.adapter)?;
        Some(if ctx.detached {
            std::borrow::Cow::Owned(LoraBranch {
                a: l.a.detach(),
                b: l.b.detach(),
                ..l.clone()
            })
        } else {
            std::borrow::Cow::Borrowed(l)
        })
    }

    /// Applies the projection to `x` `(..., in)`; the LoRA branch only when `ctx.adapter`.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn forward(&self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        if let Some(l) = self.active_lora(ctx) {
            if lora_linear_supported(x, &self.weight, &l.a, &l.b) {
                let mask = ctx.dropout_mask(x.elem_count(), l.dropout);
                let y = lora_linear(x, &self.weight, &l.a, &l.b, l.scaling, mask)?;
                return Ok(match &self.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                });
            }
        }
        self.forward_plain(x, ctx)
    }

    /// The composed twin of [`Self::forward`]: frozen matmul, then the LoRA branch from candle
    /// ops (dropout mask, two matmuls, scale, add).
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn forward_plain(&self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let mut y = frozen_matmul(x, &self.weight)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(l) = self.active_lora(ctx) {
            // Mixed precision as PEFT does it: the branch runs in the adapter's dtype (f32)
            // on bf16 activations, and its output is cast back before the residual add.
            let xd = ctx.dropout(&x.to_dtype(l.a.dtype())?, l.dropout)?;
            let x2 = xd.reshape(((), l.a.dim(1)?))?;
            let low = x2.matmul(&l.a.t()?)?.matmul(&l.b.t()?)?;
            let low = (low * l.scaling)?.reshape(y.shape())?.to_dtype(y.dtype())?;
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use candle_core::{DType, Device, Var};
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn fused_lora_linear_equals_plain_twin_with_and_without_dropout() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.3, (7, 12), &dev).unwrap();
        let bias = Tensor::randn(0f32, 0.3, 7, &dev).unwrap();
        let a = Var::randn(0f32, 0.3, (3, 12), &dev).unwrap();
        let b = Var::randn(0f32, 0.3, (7, 3), &dev).unwrap();
        let x = Var::randn(0f32, 1.0, (2, 5, 12), &dev).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (2, 5, 7), &dev).unwrap();
        let mut lin = Linear::new(w, Some(bias));
        lin.set_lora(Some(LoraBranch {
            a: a.as_tensor().clone(),
            b: b.as_tensor().clone(),
            scaling: 2.5,
            dropout: 0.3,
        }));
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
        for training in [false, true] {
            // Two generators with one seed: both paths draw the same dropout mask.
            let (r1, r2) = (
                Mutex::new(rand::rngs::StdRng::seed_from_u64(5)),
                Mutex::new(rand::rngs::StdRng::seed_from_u64(5)),
            );
            let ctx = |r| ForwardCtx {
                adapter: true,
                dropout_rng: if training { Some(r) } else { None },
                left_pads: None,
                packing: None,
                detached: false,
            };
            let fast = lin.forward(&x, &ctx(&r1)).unwrap();
            let plain = lin.forward_plain(&x, &ctx(&r2)).unwrap();
            assert!(max((&fast - &plain).unwrap()) < 1e-5, "training={training}");
            let gf = (fast * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gp = (plain * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (name, v) in [("x", &x), ("A", &a), ("B", &b)] {
                let d = max((gf.get(v).unwrap() - gp.get(v).unwrap()).unwrap());
                assert!(d < 1e-4, "training={training} d{name}: {d}");
            }
        }
        // Adapter off: the frozen projection only.
        let off = ForwardCtx {
            adapter: false,
            dropout_rng: None,
            left_pads: None,
            packing: None,
            detached: false,
        };
        let base = Linear::new(lin.weight().clone(), lin.bias().cloned())
            .forward(&x, &off)
            .unwrap();
        assert_eq!(max((lin.forward(&x, &off).unwrap() - base).unwrap()), 0.0);
        let _ = DType::F32;
    }
}

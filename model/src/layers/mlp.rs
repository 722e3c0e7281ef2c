//! The SwiGLU MLP: `down_proj(silu(gate_proj(x)) * up_proj(x))`, `x` `(..., hidden)` -> same.
//!
//! The elementwise part is [`crate::kernels::cpu::swiglu::swiglu`] (custom op with a plain twin).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::ModelConfig;
use crate::kernels::cpu::swiglu::swiglu;
use crate::layers::context::ForwardCtx;
use crate::layers::linear::Linear;
use crate::layers::lora::{Adapter, TargetModule};
use crate::Result;

/// `gate_proj`, `up_proj`, `down_proj` of one layer.
#[derive(Debug, Clone)]
pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    /// Loads the three projections under `vb` (`mlp`).
    ///
    /// # Errors
    /// A missing tensor or wrong shape.
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: Linear::load(vb.pp("gate_proj"), h, i, false)?,
            up_proj: Linear::load(vb.pp("up_proj"), h, i, false)?,
            down_proj: Linear::load(vb.pp("down_proj"), i, h, false)?,
        })
    }

    /// The projection named by `module` (MLP modules only).
    pub fn projection(&self, module: TargetModule) -> Option<&Linear> {
        match module {
            TargetModule::GateProj => Some(&self.gate_proj),
            TargetModule::UpProj => Some(&self.up_proj),
            TargetModule::DownProj => Some(&self.down_proj),
            _ => None,
        }
    }

    /// Attaches the adapter's branches for `layer` (or removes them with `None`).
    pub fn set_adapter(&mut self, adapter: Option<&Adapter>, layer: usize) {
        let branch = |m| adapter.and_then(|a| a.branch(layer, m));
        self.gate_proj.set_lora(branch(TargetModule::GateProj));
        self.up_proj.set_lora(branch(TargetModule::UpProj));
        self.down_proj.set_lora(branch(TargetModule::DownProj));
    }

    /// A copy with LoRA merged into the frozen weights.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn merged(&self) -> Result<Self> {
        Ok(Self {
            gate_proj: self.gate_proj.merged()?,
            up_proj: self.up_proj.merged()?,
            down_proj: self.down_proj.merged()?,
        })
    }

    /// Applies the MLP.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn forward(&self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x, ctx)?;
        let up = self.up_proj.forward(x, ctx)?;
        self.down_proj.forward(&swiglu(&gate, &up)?, ctx)
    }
}

//! One pre-norm decoder layer:
//! `h = x + attn(input_layernorm(x))`, `y = h + mlp(post_attention_layernorm(h))`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::ModelConfig;
use crate::layers::attention::Attention;
use crate::layers::context::ForwardCtx;
use crate::layers::lora::Adapter;
use crate::layers::mlp::Mlp;
use crate::layers::norm::RmsNorm;
use crate::layers::rope::Rope;
use crate::Result;

/// `model.layers.N`.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    /// Loads the layer under `vb` (`model.layers.N`).
    ///
    /// # Errors
    /// A missing tensor or wrong shape.
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            input_layernorm: RmsNorm::load(vb.pp("input_layernorm"), h, eps)?,
            self_attn: Attention::load(vb.pp("self_attn"), cfg)?,
            post_attention_layernorm: RmsNorm::load(vb.pp("post_attention_layernorm"), h, eps)?,
            mlp: Mlp::load(vb.pp("mlp"), cfg)?,
        })
    }

    /// The attention block.
    pub fn attention(&self) -> &Attention {
        &self.self_attn
    }

    /// The MLP block.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// Attaches the adapter's branches for layer `index` (or removes them with `None`).
    pub fn set_adapter(&mut self, adapter: Option<&Adapter>, index: usize) {
        self.self_attn.set_adapter(adapter, index);
        self.mlp.set_adapter(adapter, index);
    }

    /// A copy with LoRA merged into the frozen weights.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn merged(&self) -> Result<Self> {
        Ok(Self {
            self_attn: self.self_attn.merged()?,
            mlp: self.mlp.merged()?,
            ..self.clone()
        })
    }

    /// `x` `(batch, seq, hidden)` -> same shape. See [`Attention::forward`] for the rest.
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
        let a =
            self.self_attn
                .forward(&self.input_layernorm.forward(x)?, rope, offset, cache, ctx)?;
        let h = (x + a)?;
        let m = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&h)?, ctx)?;
        Ok((h + m)?)
    }
}

//! The decoder's layers, each `load(vb, &cfg)` + `forward`, built from candle ops with backward
//! passes or from the custom ops in [`crate::kernels`]:
//!
//! - [`norm`]: RMSNorm; [`rope`]: rotary position embeddings (half and interleaved styles);
//! - [`linear`]: a frozen projection with an optional LoRA branch; [`lora`]: [`LoraConfig`] and
//!   the trainable [`Adapter`] (PEFT initialization, flat f32 vector for aggregators);
//! - [`attention`] (grouped-query, causal), [`mlp`] (SwiGLU), [`layer`] (one decoder block);
//! - [`decoder`]: [`Decoder`], embeddings to logits, with the adapter attached or merged;
//! - [`context`]: what one forward pass carries (training flag, seeded LoRA dropout);
//! - [`checkpoint`]: activation checkpointing per decoder layer.
//!
//! [`LoraConfig`]: lora::LoraConfig
//! [`Adapter`]: lora::Adapter
//! [`Decoder`]: decoder::Decoder

pub mod attention;
pub mod checkpoint;
pub mod context;
pub mod decoder;
pub mod layer;
pub mod linear;
pub mod lora;
pub mod mlp;
pub mod norm;
pub mod rope;

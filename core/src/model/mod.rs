//! The model: a differentiable llama-family decoder with LoRA, its loaders, tokenizer and chat
//! template, sequence log-probs, optimizer and generation.
//!
//! - [`config`]: [`ModelConfig`] from `config.json` or GGUF metadata.
//! - Layers, each `load(vb, &cfg)` + `forward`: [`rms_norm`], [`rope`], [`linear`] (frozen,
//!   optional LoRA branch), [`attention`], [`mlp`], [`layer`], [`decoder`] ([`Decoder`]).
//! - [`lora`]: [`LoraConfig`], [`Adapter`] (PEFT init, flat f32 vector for aggregators).
//! - [`logprobs`]: summed answer log-probs of a right-padded batch, with autograd to the adapter.
//! - [`gguf`]: GGUF loader (dequantized to f32, llama q/k un-permuted to the HF layout).
//! - [`tokenizer`], [`chat_template`], [`answer_mask`]: text to masked token ids, as TRL does.
//! - [`hf`], [`load`]: Hugging Face directories; [`load_model`] picks the format from the path.
//! - [`peft`]: LoRA adapters saved and loaded in PEFT's layout.
//! - [`optimizer`]: AdamW (PyTorch semantics), global-norm clipping, gradient accumulation.
//! - [`device`]: [`select_device`] (`auto`, `cpu`, `cuda:N`) and [`parse_dtype`] (`f32`, `bf16`).
//! - [`cpu`]: [`init_cpu`] (FTZ/DAZ, allocator thresholds). Custom ops, each with a plain twin
//!   it is tested against: [`frozen_matmul`] (gemm, input gradient only), [`fused_attention`],
//!   [`fused_log_softmax`], [`fused_swiglu`], [`fused_lora_linear`], and the fast paths inside [`rms_norm`], [`rope`].
//! - [`bench`]: the LoRA train-step benchmark matching `shared/bench/pytorch/train_step.py`.
//! - [`generate`]: greedy / top-p decoding with a [`KvCache`], one prompt or a left-padded batch.
//!
//! Frozen weights are plain tensors, the adapter's matrices are candle `Var`s; every op on the
//! training path is composed of candle ops with backward passes (candle-nn's fused softmax,
//! rms_norm and rope have none) or is a custom op with a hand-written, tested backward.
//!
//! A training step, in short:
//! ```text
//! let loaded = load_model(path, &Device::Cpu)?;           // GGUF or HF dir
//! let mut model = loaded.decoder;
//! model.attach_adapter(Adapter::new(&lora_cfg, model.config(), seed, DType::F32, &dev)?)?;
//! let seq = encode_chat(&loaded.tokenizer, &template, &prompt, answer)?;   // TRL masking
//! let batch = SequenceBatch::new(&seqs, pad_id, &dev)?;
//! let logp_ref = reference_logprobs(&model, &batch)?;      // adapter off, cached once
//! let logp = sequence_logprobs(&model, &batch)?.logp;      // autograd to the adapter
//! let grads = surrogate(logp).backward()?;                 // from the loss plugin's gradients
//! opt.step(&opt.grads_from(&grads)?)?;                     // AdamW, clipping
//! ```

pub mod answer_mask;
pub mod attention;
pub mod bench;
pub mod chat_template;
pub mod config;
pub mod context;
pub mod cpu;
pub mod decoder;
pub mod device;
pub mod frozen_matmul;
pub mod fused_attention;
pub mod fused_log_softmax;
pub mod fused_lora_linear;
pub mod fused_swiglu;
pub mod generate;
pub mod gguf;
pub mod gpu_softmax;
pub mod hf;
pub mod host_constants;
pub mod kv_cache;
pub mod layer;
pub mod linear;
pub mod load;
pub mod logprobs;
pub mod logprobs_cli;
pub mod lora;
pub mod mlp;
pub mod optimizer;
pub mod peft;
pub mod rms_norm;
pub mod rope;
pub mod tokenizer;

#[cfg(test)]
mod device_tests;
#[cfg(test)]
pub(crate) mod test_util;

pub use answer_mask::encode_chat;
pub use chat_template::{ChatMessage, ChatTemplate};
pub use config::{Architecture, ModelConfig};
pub use cpu::init_cpu;
pub use decoder::Decoder;
pub use device::{
    describe, gpu_name, gpu_peak_memory, parse_dtype, reset_gpu_peak_memory, select_device,
};
pub use generate::{generate, generate_batch, GenerateConfig};
pub use gguf::GgufFile;
pub use kv_cache::KvCache;
pub use load::{load_model, load_model_as, LoadedModel};
pub use logprobs::{
    reference_logprobs, sequence_logprobs, MaskedSequence, SequenceBatch, SequenceLogProbs,
};
pub use lora::{Adapter, LoraConfig, TargetModule};
pub use optimizer::{AdamW, AdamWConfig, GradAccumulator};
pub use peft::{load_adapter, save_adapter};
pub use tokenizer::TextTokenizer;

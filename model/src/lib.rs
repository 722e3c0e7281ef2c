//! fedpref-model: a differentiable llama-family decoder (llama, qwen2) with LoRA, for training
//! preference losses on CPU or CUDA with candle; its loaders, tokenizer, chat template,
//! sequence log-probs and generation.
//!
//! - [`config`]: [`ModelConfig`] from `config.json` or GGUF metadata.
//! - [`layers`]: RMSNorm, RoPE, frozen linear with a LoRA branch, attention, SwiGLU MLP, the
//!   [`Decoder`]; [`Adapter`] is the trainable LoRA state, flat f32 for aggregators.
//! - [`kernels`]: custom ops with hand-written backward passes, each beside its plain twin.
//! - [`io`]: GGUF and Hugging Face loaders ([`load_model`]) and PEFT adapters.
//! - [`text`]: tokenizer, chat template, and masked prompt/answer ids as TRL builds them.
//! - [`logprobs`]: summed answer log-probs of a right-padded batch, with autograd to the adapter.
//! - [`generate`]: greedy / top-p decoding with a [`KvCache`], one prompt or a left-padded batch.
//! - [`quantized`]: [`QuantizedModel`], inference on a quantized GGUF model (the offline judge):
//!   next-token probabilities of answer options, and generation.
//! - [`device`]: [`select_device`] (`auto`, `cpu`, `cuda:N`), and
//!   [`init_cpu`] (flush denormals, allocator thresholds) to call once at start-up.
//! - [`testing`]: tiny random models for tests (this crate's and its users').
//!
//! Frozen weights are plain tensors, the adapter's matrices are candle `Var`s; every op on the
//! training path is composed of candle ops with backward passes (candle-nn's fused softmax,
//! rms_norm and rope have none) or is a custom op with a hand-written, tested backward.
//!
//! A training step, in short (the optimizer lives with the training loop, in `fedpref`):
//! ```text
//! let loaded = load_model(path, &Device::Cpu)?;           // GGUF or HF dir
//! let mut model = loaded.decoder;
//! model.attach_adapter(Adapter::new(&lora_cfg, model.config(), seed, DType::F32, &dev)?)?;
//! let seq = encode_chat(&loaded.tokenizer, &template, &prompt, answer)?;   // TRL masking
//! let batch = SequenceBatch::new(&seqs, pad_id, &dev)?;
//! let logp_ref = reference_logprobs(&model, &batch)?;      // adapter off, cached once
//! let logp = sequence_logprobs(&model, &batch)?.logp;      // autograd to the adapter
//! let grads = model.backward(&surrogate(logp))?;          // not loss.backward(): checkpointed
//!                                                          // layers' LoRA gradients join here
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod device;
pub mod error;
pub mod generate;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod logprobs;
pub mod options;
pub mod quantized;
pub mod testing;
pub mod text;

pub use config::{Architecture, ModelConfig};
pub use device::cpu::init_cpu;
pub use device::{describe, gpu_name, gpu_peak_memory, reset_gpu_peak_memory, select_device};
pub use error::{Error, Result};
pub use generate::kv_cache::KvCache;
pub use generate::{generate, generate_batch, GenerateConfig};
pub use io::gguf::GgufFile;
pub use io::identity::model_identity;
pub use io::load::{load_model, load_model_as, LoadedModel};
pub use io::peft::{load_adapter, save_adapter};
pub use layers::decoder::{Decoder, MemoryOptions};
pub use layers::lora::{Adapter, LoraConfig, TargetModule};
pub use logprobs::{
    reference_logprobs, sequence_logprobs, MaskedSequence, SequenceBatch, SequenceLogProbs,
};
pub use quantized::QuantizedModel;
pub use text::answer_mask::encode_chat;
pub use text::chat_template::{ChatMessage, ChatTemplate};
pub use text::tokenizer::TextTokenizer;

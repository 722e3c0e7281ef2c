//! Model files in and out: [`gguf`] (dequantized to the HF layout), [`hf`] (Hugging Face
//! safetensors directories), [`load`] ([`load_model`] picks the format from the path) and
//! [`peft`] (LoRA adapters in PEFT's layout).
//!
//! [`load_model`]: load::load_model

pub mod gguf;
pub mod hf;
pub mod identity;
pub mod load;
pub mod peft;

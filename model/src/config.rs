//! The decoder's hyper-parameters ([`ModelConfig`]), read from a Hugging Face `config.json`
//! ([`ModelConfig::from_hf_json`]) or from GGUF metadata ([`ModelConfig::from_gguf`]).
//!
//! Fed by the loaders ([`crate::io::gguf`], [`crate::io::hf`]); feeds every layer's `load(vb, &cfg)`.
//! The architecture is always read from the file (`model_type` / `general.architecture`), never
//! chosen by the user.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use serde::Deserialize;

use crate::{Error, Result};

/// The decoder families this module implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama, SmolLM2, Mistral without sliding window: no biases on the projections.
    Llama,
    /// Qwen2 / Qwen2.5: biases on `q_proj`, `k_proj`, `v_proj`.
    Qwen2,
}

impl Architecture {
    /// Maps a `model_type`, an `architectures` entry or a GGUF `general.architecture` value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "llama" | "llamaforcausallm" | "mistral" | "mistralforcausallm" => Some(Self::Llama),
            "qwen2" | "qwen2forcausallm" => Some(Self::Qwen2),
            _ => None,
        }
    }
}

/// Llama 3 style frequency-dependent RoPE scaling (`rope_scaling.rope_type = "llama3"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Llama3RopeScaling {
    /// Divisor of the low frequencies.
    pub factor: f64,
    /// Wavelength bound (as a fraction of the original context) below which nothing changes.
    pub low_freq_factor: f64,
    /// Wavelength bound above which frequencies are divided by `factor`.
    pub high_freq_factor: f64,
    /// The context length the model was pre-trained with.
    pub original_max_position_embeddings: usize,
}

/// Hyper-parameters of a llama-family decoder, in Hugging Face's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Which family (decides the biases).
    pub architecture: Architecture,
    /// Vocabulary size: rows of the embedding and of the output head.
    pub vocab_size: usize,
    /// Residual stream width.
    pub hidden_size: usize,
    /// MLP width (`gate_proj` / `up_proj` output).
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Optional Llama 3 RoPE scaling.
    pub rope_scaling: Option<Llama3RopeScaling>,
    /// Longest position the RoPE tables cover.
    pub max_position_embeddings: usize,
    /// Output head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Biases on `q_proj`, `k_proj`, `v_proj`.
    pub qkv_bias: bool,
    /// Bias on `o_proj`.
    pub o_bias: bool,
    /// Beginning-of-sequence token, when the model has one.
    pub bos_token_id: Option<u32>,
    /// Tokens that end generation (the tokenizer may add the template's end token).
    pub eos_token_ids: Vec<u32>,
}

/// The longest context a model file may declare (RoPE tables are allocated for it).
pub const MAX_POSITIONS: usize = 1 << 21;

/// The largest head dimension, head count or layer count a model file may declare.
const MAX_DIM: usize = 1 << 12;

impl ModelConfig {
    /// Width of the query projection output: `num_attention_heads * head_dim`.
    pub fn q_size(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of the key / value projection outputs: `num_key_value_heads * head_dim`.
    pub fn kv_size(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Checks the shapes fit together (heads divide, head_dim even).
    ///
    /// # Errors
    /// [`Error::ModelFormat`] naming `path` and the inconsistent values.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |message: String| Error::ModelFormat {
            path: path.to_path_buf(),
            message,
        };
        if self.num_attention_heads == 0
            || self.num_key_value_heads == 0
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return Err(bad(format!(
                "num_attention_heads {} is not a positive multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(bad(format!(
                "head_dim {} must be even and positive",
                self.head_dim
            )));
        }
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_hidden_layers == 0 {
            return Err(bad(
                "vocab_size, hidden_size and num_hidden_layers must be positive".into(),
            ));
        }
        // Sizes from a file decide allocations (the RoPE tables hold max_position_embeddings x
        // head_dim values): a hostile value must be an error, not an abort on allocation.
        for (key, value, limit) in [
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_POSITIONS,
            ),
            ("head_dim", self.head_dim, MAX_DIM),
            ("hidden_size", self.hidden_size, MAX_DIM * 64),
            ("intermediate_size", self.intermediate_size, MAX_DIM * 256),
            ("num_attention_heads", self.num_attention_heads, MAX_DIM),
            ("num_hidden_layers", self.num_hidden_layers, MAX_DIM),
            ("vocab_size", self.vocab_size, 1 << 24),
        ] {
            if value > limit {
                return Err(bad(format!(
                    "{key} = {value} is beyond any supported model (at most {limit}); the file is damaged or not a model"
                )));
            }
        }
        if self.num_attention_heads * self.head_dim > self.hidden_size * 8 {
            return Err(bad(format!(
                "{} heads of {} dimensions do not fit hidden_size {}",
                self.num_attention_heads, self.head_dim, self.hidden_size
            )));
        }
        // A zero or negative epsilon divides by zero in RMSNorm; a base <= 1 makes RoPE's
        // frequencies NaN or constant: the output would be garbage, not an error.
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(bad(format!(
                "rms_norm_eps = {} must be a positive number",
                self.rms_norm_eps
            )));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return Err(bad(format!(
                "rope_theta = {} must be a number above 1",
                self.rope_theta
            )));
        }
        let vocab = self.vocab_size as u32;
        if let Some(id) = self
            .bos_token_id
            .into_iter()
            .chain(self.eos_token_ids.iter().copied())
            .find(|&id| id >= vocab)
        {
            return Err(bad(format!(
                "special token id {id} is outside the vocabulary of {} tokens",
                self.vocab_size
            )));
        }
        Ok(())
    }

    /// Parses a Hugging Face `config.json`.
    ///
    /// # Errors
    /// [`Error::Json`] for malformed JSON, [`Error::UnsupportedArchitecture`] for a `model_type`
    /// other than llama / qwen2 (or mistral), [`Error::ModelFormat`] for inconsistent shapes.
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self> {
        let raw: HfConfig = serde_json::from_str(text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let arch_name = raw
            .model_type
            .clone()
            .or_else(|| raw.architectures.as_ref().and_then(|a| a.first().cloned()))
            .unwrap_or_default();
        let architecture =
            Architecture::from_name(&arch_name).ok_or_else(|| Error::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: arch_name.clone(),
            })?;
        let num_key_value_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        let head_dim = raw
            .head_dim
            .unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1));
        // transformers >= 5 writes `rope_parameters` instead of `rope_theta` + `rope_scaling`.
        let rope = raw.rope_scaling.as_ref().or(raw.rope_parameters.as_ref());
        let rope_theta = raw
            .rope_theta
            .or_else(|| raw.rope_parameters.as_ref().and_then(|p| p.rope_theta))
            .unwrap_or(10_000.0);
        let rope_scaling = match rope {
            None => None,
            Some(s) => {
                let kind = s
                    .rope_type
                    .clone()
                    .or_else(|| s.type_.clone())
                    .unwrap_or_default();
                match kind.as_str() {
                    "default" | "" => None,
                    "llama3" => Some(Llama3RopeScaling {
                        factor: s.factor.unwrap_or(1.0),
                        low_freq_factor: s.low_freq_factor.unwrap_or(1.0),
                        high_freq_factor: s.high_freq_factor.unwrap_or(4.0),
                        original_max_position_embeddings: s
                            .original_max_position_embeddings
                            .unwrap_or(raw.max_position_embeddings),
                    }),
                    other => {
                        return Err(Error::ModelFormat {
                            path: path.to_path_buf(),
                            message: format!(
                                "rope_scaling type {other:?} is not supported; expected default or llama3"
                            ),
                        })
                    }
                }
            }
        };
        let eos_token_ids = match raw.eos_token_id {
            None => vec![],
            Some(OneOrMany::One(id)) => vec![id],
            Some(OneOrMany::Many(ids)) => ids,
        };
        let attention_bias = raw.attention_bias.unwrap_or(false);
        let cfg = Self {
            architecture,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            qkv_bias: architecture == Architecture::Qwen2 || attention_bias,
            o_bias: architecture == Architecture::Llama && attention_bias,
            bos_token_id: raw.bos_token_id,
            eos_token_ids,
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads the hyper-parameters from GGUF metadata (`{arch}.block_count`, ...). Tied head and
    /// biases are decided from which tensors the file holds.
    ///
    /// # Errors
    /// [`Error::UnsupportedArchitecture`] or [`Error::ModelFormat`] naming the missing key.
    pub fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let md = &content.metadata;
        let missing = |key: &str| Error::ModelFormat {
            path: path.to_path_buf(),
            message: format!("missing or malformed metadata key {key}"),
        };
        let arch_name = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| missing("general.architecture"))?
            .clone();
        let architecture =
            Architecture::from_name(&arch_name).ok_or_else(|| Error::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: arch_name.clone(),
            })?;
        let get_u = |key: &str| -> Result<usize> {
            let k = format!("{arch_name}.{key}");
            md.get(&k).and_then(gguf_usize).ok_or_else(|| missing(&k))
        };
        let get_f =
            |key: &str| -> Option<f64> { md.get(&format!("{arch_name}.{key}")).and_then(gguf_f64) };
        let hidden_size = get_u("embedding_length")?;
        let num_attention_heads = get_u("attention.head_count")?;
        let num_key_value_heads = get_u("attention.head_count_kv").unwrap_or(num_attention_heads);
        let head_dim = get_u("attention.key_length")
            .or_else(|_| get_u("rope.dimension_count"))
            .unwrap_or(hidden_size / num_attention_heads.max(1));
        let tensor_rows = |name: &str| content.tensor_infos.get(name).map(|t| t.shape.dims()[0]);
        let vocab_size = get_u("vocab_size")
            .ok()
            .or_else(|| tensor_rows("token_embd.weight"))
            .ok_or_else(|| missing("token_embd.weight"))?;
        let token_id = |key: &str| md.get(key).and_then(gguf_usize).map(|v| v as u32);
        let cfg = Self {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: get_u("feed_forward_length")?,
            num_hidden_layers: get_u("block_count")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: get_f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_theta: get_f("rope.freq_base").unwrap_or(10_000.0),
            rope_scaling: None,
            max_position_embeddings: get_u("context_length").unwrap_or(4096),
            tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
            qkv_bias: content.tensor_infos.contains_key("blk.0.attn_q.bias"),
            o_bias: content.tensor_infos.contains_key("blk.0.attn_output.bias"),
            bos_token_id: token_id("tokenizer.ggml.bos_token_id"),
            eos_token_ids: token_id("tokenizer.ggml.eos_token_id")
                .into_iter()
                .collect(),
        };
        cfg.validate(path)?;
        Ok(cfg)
    }
}

/// A GGUF integer of any width as `usize`.
pub(crate) fn gguf_usize(v: &gguf_file::Value) -> Option<usize> {
    use gguf_file::Value as V;
    match v {
        V::U8(x) => Some(*x as usize),
        V::I8(x) => usize::try_from(*x).ok(),
        V::U16(x) => Some(*x as usize),
        V::I16(x) => usize::try_from(*x).ok(),
        V::U32(x) => Some(*x as usize),
        V::I32(x) => usize::try_from(*x).ok(),
        V::U64(x) => usize::try_from(*x).ok(),
        V::I64(x) => usize::try_from(*x).ok(),
        _ => None,
    }
}

/// A GGUF float (or integer) as `f64`.
fn gguf_f64(v: &gguf_file::Value) -> Option<f64> {
    match v {
        gguf_file::Value::F32(x) => Some(*x as f64),
        gguf_file::Value::F64(x) => Some(*x),
        other => gguf_usize(other).map(|x| x as f64),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

/// `rope_scaling`, or transformers 5's `rope_parameters` (which also carries `rope_theta`).
#[derive(Deserialize)]
struct HfRopeScaling {
    rope_theta: Option<f64>,
    rope_type: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    factor: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
    original_max_position_embeddings: Option<usize>,
}

/// The subset of a Hugging Face `config.json` the decoder reads; other keys are ignored.
#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<HfRopeScaling>,
    rope_parameters: Option<HfRopeScaling>,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<OneOrMany>,
    #[serde(flatten)]
    _rest: HashMap<String, serde_json::Value>,
}

fn default_max_positions() -> usize {
    4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_config_of_smollm2_and_qwen2() {
        let smol = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":49152,
            "hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,
            "num_key_value_heads":3,"rms_norm_eps":1e-05,"rope_theta":100000,"max_position_embeddings":8192,
            "tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2}"#;
        let c = ModelConfig::from_hf_json(smol, Path::new("config.json")).unwrap();
        assert_eq!(c.architecture, Architecture::Llama);
        assert_eq!((c.head_dim, c.kv_size(), c.q_size()), (64, 192, 576));
        assert!(c.tie_word_embeddings && !c.qkv_bias && !c.o_bias);
        assert_eq!(c.eos_token_ids, vec![2]);
        let qwen = r#"{"model_type":"qwen2","vocab_size":100,"hidden_size":16,"intermediate_size":32,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"eos_token_id":[5,6]}"#;
        let c = ModelConfig::from_hf_json(qwen, Path::new("q.json")).unwrap();
        assert_eq!(c.architecture, Architecture::Qwen2);
        assert!(c.qkv_bias && !c.o_bias && !c.tie_word_embeddings);
        assert_eq!(c.eos_token_ids, vec![5, 6]);
    }

    #[test]
    fn transformers_5_rope_parameters_are_read() {
        let j = r#"{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":8,
            "num_hidden_layers":1,"num_attention_heads":2,
            "rope_parameters":{"rope_theta":100000.0,"rope_type":"default"}}"#;
        let c = ModelConfig::from_hf_json(j, Path::new("config.json")).unwrap();
        assert_eq!(c.rope_theta, 100_000.0);
        assert!(c.rope_scaling.is_none());
        let j = r#"{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":8,
            "num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":64,
            "rope_parameters":{"rope_theta":500000.0,"rope_type":"llama3","factor":8.0,
            "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#;
        let c = ModelConfig::from_hf_json(j, Path::new("config.json")).unwrap();
        assert_eq!(c.rope_theta, 500_000.0);
        assert_eq!(c.rope_scaling.unwrap().factor, 8.0);
    }

    #[test]
    fn unknown_architecture_is_named() {
        let j = r#"{"model_type":"gpt2","vocab_size":1,"hidden_size":2,"intermediate_size":2,
            "num_hidden_layers":1,"num_attention_heads":1}"#;
        let e = ModelConfig::from_hf_json(j, Path::new("m/config.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"gpt2\"") && e.contains("m/config.json"), "{e}");
    }
}

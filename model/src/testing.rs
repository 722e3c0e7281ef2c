//! Tiny random models for tests, this crate's and its users': [`tiny_config`] with
//! [`random_weights`] in memory, and [`write_tiny_model`], a whole Hugging Face model directory
//! (config, weights, byte-level BPE tokenizer, ChatML template) that exercises loading,
//! tokenizing, templating and training in milliseconds with no download. One weight table,
//! [`weight_shapes`], lists every tensor of a llama-family decoder for all of them.

use std::{collections::HashMap, path::Path};

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::json;

use crate::config::{Architecture, ModelConfig};
use crate::{Error, Result};

/// What a weight is, which decides how a random model fills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightKind {
    /// The token embeddings.
    Embedding,
    /// An RMSNorm scale (around 1).
    Norm,
    /// A projection matrix (attention, MLP) or the untied output head.
    Matrix,
    /// A projection bias.
    Bias,
}

/// Every tensor of a llama-family decoder of `cfg`, in Hugging Face names, in a fixed order.
pub fn weight_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>, WeightKind)> {
    use WeightKind::{Bias, Embedding, Matrix, Norm};
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (q, kv) = (cfg.q_size(), cfg.kv_size());
    let mut shapes = vec![
        (
            "model.embed_tokens.weight".to_owned(),
            vec![v, h],
            Embedding,
        ),
        ("model.norm.weight".to_owned(), vec![h], Norm),
    ];
    if !cfg.tie_word_embeddings {
        shapes.push(("lm_head.weight".to_owned(), vec![v, h], Matrix));
    }
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let mut layer = vec![
            ("input_layernorm.weight", vec![h], Norm),
            ("post_attention_layernorm.weight", vec![h], Norm),
            ("self_attn.q_proj.weight", vec![q, h], Matrix),
            ("self_attn.k_proj.weight", vec![kv, h], Matrix),
            ("self_attn.v_proj.weight", vec![kv, h], Matrix),
        ];
        if cfg.qkv_bias {
            layer.push(("self_attn.q_proj.bias", vec![q], Bias));
            layer.push(("self_attn.k_proj.bias", vec![kv], Bias));
            layer.push(("self_attn.v_proj.bias", vec![kv], Bias));
        }
        layer.push(("self_attn.o_proj.weight", vec![h, q], Matrix));
        if cfg.o_bias {
            layer.push(("self_attn.o_proj.bias", vec![h], Bias));
        }
        layer.push(("mlp.gate_proj.weight", vec![i, h], Matrix));
        layer.push(("mlp.up_proj.weight", vec![i, h], Matrix));
        layer.push(("mlp.down_proj.weight", vec![h, i], Matrix));
        shapes.extend(
            layer
                .into_iter()
                .map(|(name, shape, kind)| (format!("{p}.{name}"), shape, kind)),
        );
    }
    shapes
}

/// Fills [`weight_shapes`] with `fill(shape, kind)`.
///
/// # Errors
/// Whatever `fill` returns.
pub fn weights_with(
    cfg: &ModelConfig,
    mut fill: impl FnMut(&[usize], WeightKind) -> Result<Tensor>,
) -> Result<HashMap<String, Tensor>> {
    weight_shapes(cfg)
        .into_iter()
        .map(|(name, shape, kind)| Ok((name, fill(&shape, kind)?)))
        .collect()
}

/// A 2-layer GQA llama: hidden 16, 4 query heads, 2 KV heads, head_dim 4, vocab 32.
pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 32,
        hidden_size: 16,
        intermediate_size: 24,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 4,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_scaling: None,
        max_position_embeddings: 64,
        tie_word_embeddings: false,
        qkv_bias: false,
        o_bias: false,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
    }
}

/// Random weights for `cfg` in Hugging Face names on the CPU: normal, embeddings std 1, norms
/// around 1 (std 0.1), matrices and biases std 0.3; seeded.
///
/// # Panics
/// Never for a config whose sizes fit in memory (a test helper).
pub fn random_weights(cfg: &ModelConfig, seed: u64, dtype: DType) -> HashMap<String, Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    weights_with(cfg, |shape, kind| {
        let (mean, std) = match kind {
            WeightKind::Embedding => (0.0, 1.0),
            WeightKind::Norm => (1.0, 0.1),
            WeightKind::Matrix | WeightKind::Bias => (0.0, 0.3),
        };
        let normal = Normal::new(mean, std).expect("a positive standard deviation");
        let values: Vec<f64> = (0..shape.iter().product())
            .map(|_| normal.sample(&mut rng))
            .collect();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)?)
    })
    .expect("random weights of a tiny model")
}

/// Hidden size of the model [`write_tiny_model`] writes.
pub const HIDDEN: usize = 32;
/// Decoder layers of the tiny model.
pub const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const INTERMEDIATE: usize = 64;
const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}\
{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}{% endif %}\
{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// GPT-2's byte-to-character table of byte-level BPE.
fn byte_level_alphabet() -> Vec<char> {
    let printable: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            let code = if printable.contains(&b) {
                b
            } else {
                extra += 1;
                255 + extra
            };
            char::from_u32(code).expect("codes below 512 are valid chars")
        })
        .collect()
}

/// The config [`write_tiny_model`] writes: a 2-layer GQA llama over 256 bytes and ChatML's
/// special tokens, embeddings tied to the head.
pub fn tiny_model_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 256 + SPECIALS.len(),
        hidden_size: HIDDEN,
        intermediate_size: INTERMEDIATE,
        num_hidden_layers: LAYERS,
        num_attention_heads: HEADS,
        num_key_value_heads: KV_HEADS,
        head_dim: HIDDEN / HEADS,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_scaling: None,
        max_position_embeddings: 2048,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        bos_token_id: Some(0),
        eos_token_ids: vec![258],
    }
}

/// Writes `config.json`, `model.safetensors`, `tokenizer.json` and `tokenizer_config.json` of
/// a tiny random llama ([`tiny_model_config`]) into `dir`, weights drawn from `seed`.
///
/// # Errors
/// [`Error::Io`] naming the file; tensor errors.
pub fn write_tiny_model(dir: &Path, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let vocab = 256 + SPECIALS.len();
    let head_dim = HIDDEN / HEADS;
    let write = |name: &str, value: &serde_json::Value| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(value).expect("JSON values serialize"),
        )
        .map_err(|e| Error::io(&path, e))
    };
    write(
        "config.json",
        &json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": vocab,
            "hidden_size": HIDDEN,
            "intermediate_size": INTERMEDIATE,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS,
            "head_dim": head_dim,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "max_position_embeddings": 2048,
            "tie_word_embeddings": true,
            "bos_token_id": 0,
            "eos_token_id": 258,
        }),
    )?;
    let alphabet = byte_level_alphabet();
    let mut vocabulary = serde_json::Map::new();
    for (id, c) in alphabet.iter().enumerate() {
        vocabulary.insert(c.to_string(), json!(id));
    }
    let added: Vec<serde_json::Value> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": 256 + i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    write(
        "tokenizer.json",
        &json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": false, "vocab": vocabulary, "merges": []},
        }),
    )?;
    write(
        "tokenizer_config.json",
        &json!({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": false, "chat_template": CHATML}),
    )?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let weights = weights_with(&tiny_model_config(), |shape, kind| {
        let (mean, std) = match kind {
            WeightKind::Embedding => (0.0, 1.0),
            WeightKind::Norm => (1.0, 0.1),
            WeightKind::Matrix | WeightKind::Bias => (0.0, 0.2),
        };
        // Uniform with the given standard deviation: sqrt(3) * std bounds.
        let bound = std * 3f32.sqrt();
        let values: Vec<f32> = (0..shape.iter().product())
            .map(|_| mean + rng.random_range(-bound..bound))
            .collect();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    })?;
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&weights, &path)?;
    Ok(())
}

/// Writes a llama GGUF of `cfg` with random weights (seed) as llama.cpp lays it out: GGUF tensor
/// names, q and k rows permuted for interleaved RoPE, a byte-level BPE tokenizer over
/// `cfg.vocab_size` single-character tokens, and the MLP in Q8_0 when `quantize_mlp` (to
/// exercise dequantization). Returns the weights the file holds, in Hugging Face names and
/// layout (what a loader must reproduce).
///
/// # Errors
/// I/O and tensor errors.
pub fn write_tiny_gguf(
    path: &Path,
    cfg: &ModelConfig,
    seed: u64,
    quantize_mlp: bool,
) -> Result<HashMap<String, Tensor>> {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    use gguf_file::Value as V;

    let mut weights = random_weights(cfg, seed, DType::F32);
    let mut tensors = Vec::new();
    for (name, held) in weights.iter_mut() {
        let mut t = held.clone();
        if name.contains("q_proj") {
            t = crate::io::gguf::permute_rows(&t, cfg.num_attention_heads)?;
        } else if name.contains("k_proj") {
            t = crate::io::gguf::permute_rows(&t, cfg.num_key_value_heads)?;
        }
        let quantize = quantize_mlp && name.contains("mlp.") && t.dim(1)? % 32 == 0;
        let dtype = if quantize {
            GgmlDType::Q8_0
        } else {
            GgmlDType::F32
        };
        let q = QTensor::quantize(&t, dtype)?;
        if quantize {
            // What the file holds (MLP weights are not permuted).
            *held = q.dequantize(&Device::Cpu)?;
        }
        tensors.push((gguf_name(name), q));
    }
    let tokens: Vec<V> = (0..cfg.vocab_size)
        .map(|i| V::String(char::from_u32(0x100 + i as u32).map_or_else(String::new, String::from)))
        .collect();
    let u32_of = |n: usize| V::U32(n as u32);
    let metadata = vec![
        ("general.architecture", V::String("llama".into())),
        ("llama.block_count", u32_of(cfg.num_hidden_layers)),
        ("llama.context_length", u32_of(cfg.max_position_embeddings)),
        ("llama.embedding_length", u32_of(cfg.hidden_size)),
        ("llama.feed_forward_length", u32_of(cfg.intermediate_size)),
        (
            "llama.attention.head_count",
            u32_of(cfg.num_attention_heads),
        ),
        (
            "llama.attention.head_count_kv",
            u32_of(cfg.num_key_value_heads),
        ),
        ("llama.rope.dimension_count", u32_of(cfg.head_dim)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            V::F32(cfg.rms_norm_eps as f32),
        ),
        ("llama.rope.freq_base", V::F32(cfg.rope_theta as f32)),
        ("tokenizer.ggml.model", V::String("gpt2".into())),
        ("tokenizer.ggml.tokens", V::Array(tokens)),
        ("tokenizer.ggml.merges", V::Array(Vec::new())),
        ("tokenizer.ggml.bos_token_id", V::U32(1)),
        ("tokenizer.ggml.eos_token_id", V::U32(2)),
    ];
    let metadata: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let mut tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    // In name order, so that the same arguments write the same bytes (the fault suite flips
    // bits at fixed offsets of this file).
    tensors.sort_by_key(|(name, _)| *name);
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    gguf_file::write(&mut file, &metadata, &tensors)?;
    Ok(weights)
}

/// The GGUF name llama.cpp gives a Hugging Face tensor name.
fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return (*g).to_owned();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap_or(hf);
    let (layer, rest) = rest.split_once('.').unwrap_or(("0", rest));
    let (module, kind) = rest.rsplit_once('.').unwrap_or((rest, "weight"));
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        other => other,
    };
    format!("blk.{layer}.{g}.{kind}")
}

/// The default SmolLM2 GGUF (fetched by `cargo xtask setup`), loaded once per test binary.
pub fn smollm2() -> &'static (
    crate::layers::decoder::Decoder,
    crate::text::tokenizer::TextTokenizer,
) {
    static MODEL: std::sync::OnceLock<(
        crate::layers::decoder::Decoder,
        crate::text::tokenizer::TextTokenizer,
    )> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let path = smollm2_path();
        let file = crate::io::gguf::GgufFile::open(&path).unwrap();
        let tok = crate::text::tokenizer::TextTokenizer::from_gguf(&file).unwrap();
        (file.decoder(DType::F32, &Device::Cpu).unwrap(), tok)
    })
}

/// Path of the default GGUF; panics with the fix when it is missing.
pub fn smollm2_path() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask setup`",
        p.display()
    );
    p
}

/// Largest absolute elementwise difference of two tensors of one shape, as f64.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// [`max_diff`] relative to `reference`'s largest absolute entry (absolute when that is 0).
pub fn relative_diff(a: &Tensor, reference: &Tensor) -> f64 {
    let zero = reference.zeros_like().unwrap();
    max_diff(a, reference) / max_diff(reference, &zero).max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_model;

    #[test]
    fn the_tiny_model_loads_tokenizes_and_templates() {
        let dir = tempfile::tempdir().expect("temporary directory");
        write_tiny_model(dir.path(), 1).expect("write");
        let model = load_model(dir.path(), &Device::Cpu).expect("load");
        assert_eq!(model.decoder.config().num_hidden_layers, LAYERS);
        let ids = model.tokenizer.encode("héllo<|im_end|>").expect("encode");
        // 'h', 'é' (two bytes), 'l', 'l', 'o', then the special token.
        assert_eq!(ids.len(), 7);
        assert_eq!(*ids.last().expect("ids"), 258);
        assert_eq!(
            model.tokenizer.decode(&ids[..6], false).expect("decode"),
            "héllo"
        );
        let template = model.chat_template().expect("template");
        let text = template
            .render(&[crate::ChatMessage::new("user", "hi")], true)
            .expect("render");
        assert!(
            text.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
            "{text}"
        );
    }
}

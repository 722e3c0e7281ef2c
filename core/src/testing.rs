//! Test support: a tiny random Hugging Face model directory that exercises the whole training
//! path (loader, tokenizer, chat template, decoder, LoRA) in milliseconds, with no download.
//!
//! The tokenizer is byte-level BPE over the 256 bytes with no merges, plus ChatML's special
//! tokens, and the chat template is SmolLM2's ChatML; the decoder is a 2-layer GQA llama.

use std::{collections::HashMap, path::Path};

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::{Error, Result};

/// Hidden size of the tiny model.
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

/// Writes `config.json`, `model.safetensors`, `tokenizer.json` and `tokenizer_config.json` of
/// a tiny random llama into `dir`, weights drawn from `seed`.
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
    let mut tensor = |shape: &[usize], mean: f32, std: f32| -> Result<Tensor> {
        let n: usize = shape.iter().product();
        // Uniform with the given standard deviation: sqrt(3) * std bounds.
        let bound = std * 3f32.sqrt();
        let values: Vec<f32> = (0..n)
            .map(|_| mean + rng.random_range(-bound..bound))
            .collect();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    };
    let (q, kv) = (HEADS * head_dim, KV_HEADS * head_dim);
    let mut weights = HashMap::new();
    weights.insert(
        "model.embed_tokens.weight".to_owned(),
        tensor(&[vocab, HIDDEN], 0.0, 1.0)?,
    );
    weights.insert("model.norm.weight".to_owned(), tensor(&[HIDDEN], 1.0, 0.1)?);
    for layer in 0..LAYERS {
        let p = format!("model.layers.{layer}");
        for (name, shape, mean, std) in [
            ("input_layernorm", vec![HIDDEN], 1.0, 0.1),
            ("post_attention_layernorm", vec![HIDDEN], 1.0, 0.1),
            ("self_attn.q_proj", vec![q, HIDDEN], 0.0, 0.2),
            ("self_attn.k_proj", vec![kv, HIDDEN], 0.0, 0.2),
            ("self_attn.v_proj", vec![kv, HIDDEN], 0.0, 0.2),
            ("self_attn.o_proj", vec![HIDDEN, q], 0.0, 0.2),
            ("mlp.gate_proj", vec![INTERMEDIATE, HIDDEN], 0.0, 0.2),
            ("mlp.up_proj", vec![INTERMEDIATE, HIDDEN], 0.0, 0.2),
            ("mlp.down_proj", vec![HIDDEN, INTERMEDIATE], 0.0, 0.2),
        ] {
            weights.insert(format!("{p}.{name}.weight"), tensor(&shape, mean, std)?);
        }
    }
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&weights, &path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedpref_model::load_model;

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
            .render(&[fedpref_model::ChatMessage::new("user", "hi")], true)
            .expect("render");
        assert!(
            text.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
            "{text}"
        );
    }
}

//! Tiny random models for unit tests: a config and a weight map in Hugging Face names.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::config::{Architecture, ModelConfig};

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

/// Random weights for `cfg` in Hugging Face names, normal with std `0.2` (norms around 1).
pub fn random_weights(cfg: &ModelConfig, seed: u64, dtype: DType) -> HashMap<String, Tensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dev = Device::Cpu;
    let mut t = |shape: &[usize], mean: f64, std: f64| {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| {
                // Box-Muller from two uniforms.
                let u1: f64 = rng.random::<f64>().max(1e-12);
                let u2: f64 = rng.random();
                mean + std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect();
        Tensor::from_vec(v, shape, &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    };
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (q, kv) = (cfg.q_size(), cfg.kv_size());
    let mut m = HashMap::new();
    m.insert("model.embed_tokens.weight".into(), t(&[v, h], 0.0, 1.0));
    m.insert("model.norm.weight".into(), t(&[h], 1.0, 0.1));
    if !cfg.tie_word_embeddings {
        m.insert("lm_head.weight".into(), t(&[v, h], 0.0, 0.3));
    }
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        m.insert(format!("{p}.input_layernorm.weight"), t(&[h], 1.0, 0.1));
        m.insert(
            format!("{p}.post_attention_layernorm.weight"),
            t(&[h], 1.0, 0.1),
        );
        m.insert(format!("{p}.self_attn.q_proj.weight"), t(&[q, h], 0.0, 0.3));
        m.insert(
            format!("{p}.self_attn.k_proj.weight"),
            t(&[kv, h], 0.0, 0.3),
        );
        m.insert(
            format!("{p}.self_attn.v_proj.weight"),
            t(&[kv, h], 0.0, 0.3),
        );
        m.insert(format!("{p}.self_attn.o_proj.weight"), t(&[h, q], 0.0, 0.3));
        if cfg.qkv_bias {
            m.insert(format!("{p}.self_attn.q_proj.bias"), t(&[q], 0.0, 0.3));
            m.insert(format!("{p}.self_attn.k_proj.bias"), t(&[kv], 0.0, 0.3));
            m.insert(format!("{p}.self_attn.v_proj.bias"), t(&[kv], 0.0, 0.3));
        }
        m.insert(format!("{p}.mlp.gate_proj.weight"), t(&[i, h], 0.0, 0.3));
        m.insert(format!("{p}.mlp.up_proj.weight"), t(&[i, h], 0.0, 0.3));
        m.insert(format!("{p}.mlp.down_proj.weight"), t(&[h, i], 0.0, 0.3));
    }
    m
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

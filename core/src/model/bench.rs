//! The training-step benchmark ([`train_step`]), the counterpart of
//! `shared/bench/pytorch/train_step.py --config lora`: SmolLM2-135M shapes in f32, LoRA r=8
//! alpha=16 dropout=0.05 on q_proj, v_proj, a batch of 4 x 256 random token ids, causal-LM
//! loss (mean next-token cross-entropy over every position), AdamW lr 1e-4; warm-up steps, then
//! timed steps (forward, backward, optimizer) and the median.
//!
//! Weights are the default GGUF's when a path is given (as the PyTorch script uses), random
//! otherwise (timing does not depend on their values). Run it with
//! `cargo run --release -p fedpref --example bench_train_step`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::config::{Architecture, ModelConfig};
use super::decoder::Decoder;
use super::gguf::GgufFile;
use super::logprobs::{sequence_logprobs, MaskedSequence, SequenceBatch};
use super::lora::{Adapter, LoraConfig};
use super::optimizer::{AdamW, AdamWConfig};
use crate::Result;

/// SmolLM2-135M-Instruct's hyper-parameters.
pub fn smollm2_135m_config() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 49152,
        hidden_size: 576,
        intermediate_size: 1536,
        num_hidden_layers: 30,
        num_attention_heads: 9,
        num_key_value_heads: 3,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 100_000.0,
        rope_scaling: None,
        max_position_embeddings: 8192,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
    }
}

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct TrainStepBench {
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// LoRA rank (alpha = 2 r, dropout 0.05, q_proj and v_proj as in the PyTorch script).
    pub rank: usize,
    /// GGUF to take the weights from; `None`: random weights of SmolLM2's shapes.
    pub gguf: Option<PathBuf>,
}

impl Default for TrainStepBench {
    fn default() -> Self {
        Self {
            batch: 4,
            seq: 256,
            warmup: 1,
            steps: 3,
            rank: 8,
            gguf: None,
        }
    }
}

/// One JSON line of results (field names follow train_step.py where they overlap).
#[derive(Debug, Clone, Serialize)]
pub struct TrainStepReport {
    /// `"lora"`.
    pub config: &'static str,
    /// Median seconds per timed step.
    pub s_per_step: f64,
    /// Every timed step.
    pub step_times: Vec<f64>,
    /// Median forward seconds (through the loss).
    pub forward_s: f64,
    /// Median backward seconds.
    pub backward_s: f64,
    /// Median optimizer seconds (gradient collection, clipping, AdamW).
    pub optimizer_s: f64,
    /// `batch * seq / s_per_step`.
    pub tokens_per_s: f64,
    /// Peak resident set size of the process, MiB.
    pub peak_rss_mib: f64,
    /// LoRA parameters.
    pub trainable_params: usize,
    /// Loss of every step (warm-up included).
    pub losses: Vec<f64>,
    /// Compute threads.
    pub threads: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[s.len() / 2]
}

/// Peak RSS of this process in MiB (Linux `ru_maxrss` is KiB).
pub fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF is always valid.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0 {
            return u.ru_maxrss as f64 / 1024.0;
        }
    }
    f64::NAN
}

/// Random weights of `cfg`'s shapes (normal, std 0.02; norms 1), Hugging Face names.
///
/// # Errors
/// Tensor errors.
pub fn random_model(cfg: &ModelConfig, device: &Device) -> Result<Decoder> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (q, kv) = (cfg.q_size(), cfg.kv_size());
    let mut m: HashMap<String, Tensor> = HashMap::new();
    let r = |shape: &[usize]| Tensor::randn(0f32, 0.02, shape, device);
    m.insert("model.embed_tokens.weight".into(), r(&[v, h])?);
    m.insert(
        "model.norm.weight".into(),
        Tensor::ones(h, DType::F32, device)?,
    );
    if !cfg.tie_word_embeddings {
        m.insert("lm_head.weight".into(), r(&[v, h])?);
    }
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        m.insert(
            format!("{p}.input_layernorm.weight"),
            Tensor::ones(h, DType::F32, device)?,
        );
        m.insert(
            format!("{p}.post_attention_layernorm.weight"),
            Tensor::ones(h, DType::F32, device)?,
        );
        m.insert(format!("{p}.self_attn.q_proj.weight"), r(&[q, h])?);
        m.insert(format!("{p}.self_attn.k_proj.weight"), r(&[kv, h])?);
        m.insert(format!("{p}.self_attn.v_proj.weight"), r(&[kv, h])?);
        m.insert(format!("{p}.self_attn.o_proj.weight"), r(&[h, q])?);
        m.insert(format!("{p}.mlp.gate_proj.weight"), r(&[i, h])?);
        m.insert(format!("{p}.mlp.up_proj.weight"), r(&[i, h])?);
        m.insert(format!("{p}.mlp.down_proj.weight"), r(&[h, i])?);
    }
    Decoder::load(VarBuilder::from_tensors(m, DType::F32, device), cfg)
}

/// Runs the benchmark on the CPU.
///
/// # Errors
/// Loader or tensor errors.
pub fn train_step(b: &TrainStepBench) -> Result<TrainStepReport> {
    let device = Device::Cpu;
    let mut model = match &b.gguf {
        Some(p) => GgufFile::open(p)?.decoder(DType::F32, &device)?,
        None => random_model(&smollm2_135m_config(), &device)?,
    };
    let cfg = model.config().clone();
    let lora = LoraConfig::new(b.rank, 2.0 * b.rank as f64, 0.05, &["q_proj", "v_proj"])?;
    let adapter = Adapter::new(&lora, &cfg, 0, DType::F32, &device)?;
    let vars = adapter.vars();
    let trainable_params = adapter.num_params();
    model.attach_adapter(adapter)?;
    model.set_training(Some(0));
    let mut opt = AdamW::new(
        vars,
        AdamWConfig {
            max_grad_norm: None,
            ..AdamWConfig::with_lr(1e-4)
        },
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1234);
    let seqs: Vec<MaskedSequence> = (0..b.batch)
        .map(|_| {
            let ids: Vec<u32> = (0..b.seq)
                .map(|_| rng.random_range(0..cfg.vocab_size as u32))
                .collect();
            MaskedSequence {
                answer_mask: vec![true; ids.len()],
                ids,
            }
        })
        .collect();
    let batch = SequenceBatch::new(&seqs, 0, &device)?;
    let n_predicted: usize = batch.n_tokens().iter().sum();
    let (mut times, mut fwd, mut bwd, mut optim, mut losses) =
        (vec![], vec![], vec![], vec![], vec![]);
    for step in 0..b.warmup + b.steps {
        let t0 = Instant::now();
        let lp = sequence_logprobs(&model, &batch)?;
        let loss = (lp.logp.sum_all()? * (-1.0 / n_predicted as f64))?;
        let loss_value = loss.to_scalar::<f32>()? as f64;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        let g = opt.grads_from(&grads)?;
        drop(grads);
        opt.step(&g)?;
        let t3 = Instant::now();
        losses.push(loss_value);
        if step >= b.warmup {
            times.push((t3 - t0).as_secs_f64());
            fwd.push((t1 - t0).as_secs_f64());
            bwd.push((t2 - t1).as_secs_f64());
            optim.push((t3 - t2).as_secs_f64());
        }
    }
    let s = median(&times);
    Ok(TrainStepReport {
        config: "lora",
        s_per_step: s,
        step_times: times,
        forward_s: median(&fwd),
        backward_s: median(&bwd),
        optimizer_s: median(&optim),
        tokens_per_s: (b.batch * b.seq) as f64 / s,
        peak_rss_mib: peak_rss_mib(),
        trainable_params,
        losses,
        threads: candle_core::utils::get_num_threads(),
        batch: b.batch,
        seq: b.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_bench_runs_and_the_loss_goes_down() {
        let cfg = crate::model::test_util::tiny_config();
        let dev = Device::Cpu;
        assert_eq!(random_model(&cfg, &dev).unwrap().config(), &cfg);
        // The same loop as train_step on a tiny model: loss must fall over a few steps.
        let w = crate::model::test_util::random_weights(&cfg, 4, DType::F32);
        let mut model = Decoder::load(VarBuilder::from_tensors(w, DType::F32, &dev), &cfg).unwrap();
        let lora = LoraConfig::new(4, 8.0, 0.0, &["q_proj", "v_proj"]).unwrap();
        let adapter = Adapter::new(&lora, &cfg, 0, DType::F32, &dev).unwrap();
        let mut opt = AdamW::new(adapter.vars(), AdamWConfig::with_lr(1e-2)).unwrap();
        model.attach_adapter(adapter).unwrap();
        let seq = MaskedSequence {
            ids: vec![1, 2, 3, 4, 5, 6, 7, 8],
            answer_mask: vec![true; 8],
        };
        let batch = SequenceBatch::new(&[seq], 0, &dev).unwrap();
        let mut losses = vec![];
        for _ in 0..20 {
            let loss = sequence_logprobs(&model, &batch)
                .unwrap()
                .logp
                .sum_all()
                .unwrap()
                .neg()
                .unwrap();
            losses.push(loss.to_scalar::<f32>().unwrap());
            let g = opt.grads_from(&loss.backward().unwrap()).unwrap();
            opt.step(&g).unwrap();
        }
        assert!(losses[19] < losses[0] - 0.5, "{losses:?}");
        assert!(peak_rss_mib() > 1.0);
    }
}

//! Benchmarks behind `fedpref bench` (and `cargo xtask bench`): one LoRA training step
//! ([`train_step`]) and batched greedy generation ([`generate`]).
//!
//! The training step is the counterpart of `xtask/bench/lora_step.py`
//! and of `xtask/bench/lora_step.py` (the same step in PyTorch on any device): LoRA r=8
//! alpha=16 dropout=0.05 on q_proj, v_proj, a batch of 4 x 256 random token ids, causal-LM loss
//! (mean next-token cross-entropy over every position), AdamW lr 1e-4; warm-up steps, then
//! timed steps (forward, backward, optimizer) and their median.
//!
//! Weights are random, of the real shapes of [`BenchShape`] (timing does not depend on their
//! values), or a GGUF's when a path is given. FLOPs are counted as the matmuls of a step with a
//! frozen base: forward `2 N T`, backward input gradients `2 N T` (no weight gradients but
//! LoRA's), attention `4 L B heads S^2 d` forward and twice that backward (the full square, as
//! PaLM's MFU counts it), with `N` the matmul parameters (the output head included), `T = B S`.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use fedpref::train::optimizer::{AdamW, AdamWConfig};
use fedpref::Result;
use fedpref_model::{
    describe, generate_batch, gpu_name, gpu_peak_memory,
    logprobs::{sequence_logprobs, MaskedSequence, SequenceBatch},
    reset_gpu_peak_memory,
    testing::{weights_with, WeightKind},
    Adapter, Architecture, Decoder, GenerateConfig, GgufFile, LoraConfig, ModelConfig,
};

/// Model shapes the benchmarks know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchShape {
    /// SmolLM2-135M(-Instruct), the default model.
    #[value(name = "smollm2-135m")]
    Smollm2_135m,
    /// Qwen2.5-0.5B(-Instruct): biases on q/k/v, 151 936-token vocabulary.
    #[value(name = "qwen2.5-0.5b")]
    Qwen25_05b,
}

impl BenchShape {
    /// Its name, as `--shape` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Smollm2_135m => "smollm2-135m",
            Self::Qwen25_05b => "qwen2.5-0.5b",
        }
    }

    /// The hyper-parameters of the published checkpoint.
    pub fn config(self) -> ModelConfig {
        match self {
            Self::Smollm2_135m => ModelConfig {
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
            },
            Self::Qwen25_05b => ModelConfig {
                architecture: Architecture::Qwen2,
                vocab_size: 151_936,
                hidden_size: 896,
                intermediate_size: 4864,
                num_hidden_layers: 24,
                num_attention_heads: 14,
                num_key_value_heads: 2,
                head_dim: 64,
                rms_norm_eps: 1e-6,
                rope_theta: 1_000_000.0,
                rope_scaling: None,
                max_position_embeddings: 32768,
                tie_word_embeddings: true,
                qkv_bias: true,
                o_bias: false,
                bos_token_id: None,
                eos_token_ids: vec![151_645],
            },
        }
    }
}

/// Where and how a benchmark runs.
#[derive(Debug, Clone)]
pub struct BenchModel {
    /// Shape of the random weights (ignored with `gguf`).
    pub shape: BenchShape,
    /// GGUF to take the weights from; `None`: random weights of `shape`.
    pub gguf: Option<PathBuf>,
    /// Frozen weights' dtype (f32 or bf16; LoRA and optimizer stay f32).
    pub dtype: DType,
    /// The device.
    pub device: Device,
}

impl BenchModel {
    pub(super) fn load(&self) -> Result<Decoder> {
        match &self.gguf {
            Some(p) => Ok(GgufFile::open(p)?.decoder(self.dtype, &self.device)?),
            None => random_model(&self.shape.config(), self.dtype, &self.device),
        }
    }
}

/// Training-step settings.
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
    /// Head chunking and activation checkpointing.
    pub memory: fedpref_model::MemoryOptions,
}

impl Default for TrainStepBench {
    fn default() -> Self {
        Self {
            batch: 4,
            seq: 256,
            warmup: 1,
            steps: 3,
            rank: 8,
            memory: fedpref_model::MemoryOptions::default(),
        }
    }
}

/// What both reports share: the machine, the model and the memory high-water mark.
#[derive(Debug, Clone, Serialize)]
pub struct BenchContext {
    /// `cpu (N threads)` or `cuda:N`.
    pub device: String,
    /// The GPU's name, when on one.
    pub gpu: Option<String>,
    /// `smollm2-135m`, `qwen2.5-0.5b` or the GGUF's path.
    pub model: String,
    /// `F32` or `BF16` (frozen weights and activations).
    pub dtype: String,
    /// Peak resident set size of the process, MiB.
    pub peak_rss_mib: f64,
    /// Peak GPU memory in use (the allocator pool's high-water mark), MiB.
    pub peak_gpu_mib: Option<f64>,
}

impl BenchContext {
    pub(super) fn new(m: &BenchModel) -> Self {
        Self {
            device: describe(&m.device),
            gpu: gpu_name(&m.device),
            model: m
                .gguf
                .as_ref()
                .map_or_else(|| m.shape.name().to_owned(), |p| p.display().to_string()),
            dtype: format!("{:?}", m.dtype).to_uppercase(),
            peak_rss_mib: peak_rss_mib(),
            peak_gpu_mib: gpu_peak_memory(&m.device).map(|b| b as f64 / (1 << 20) as f64),
        }
    }
}

/// One training-step result (field names follow train_step.py where they overlap).
#[derive(Debug, Clone, Serialize)]
pub struct TrainStepReport {
    /// Where it ran.
    #[serde(flatten)]
    pub context: BenchContext,
    /// Median seconds per timed step.
    pub s_per_step: f64,
    /// Every timed step.
    pub step_times: Vec<f64>,
    /// Median forward seconds (through the loss).
    pub forward_s: f64,
    /// Median backward seconds.
    pub backward_s: f64,
    /// Median optimizer seconds (gradient collection, AdamW).
    pub optimizer_s: f64,
    /// `batch * seq / s_per_step`.
    pub tokens_per_s: f64,
    /// FLOPs of one step (module docs).
    pub flops_per_step: f64,
    /// `flops_per_step / s_per_step`, GFLOP/s.
    pub gflops_per_s: f64,
    /// A plain 2048 x 2048 x 2048 matmul in the step's dtype on the same device, GFLOP/s
    /// (median of 3 after a warm-up): the machine's matmul rate the step is measured against.
    pub matmul_gflops_per_s: f64,
    /// LoRA parameters.
    pub trainable_params: usize,
    /// Loss of every step (warm-up included).
    pub losses: Vec<f64>,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
}

/// One generation result.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    /// Where it ran.
    #[serde(flatten)]
    pub context: BenchContext,
    /// Prompts decoded together.
    pub batch: usize,
    /// Tokens per prompt.
    pub prompt_tokens: usize,
    /// New tokens per prompt.
    pub new_tokens: usize,
    /// Median seconds of one whole generation (prompt included).
    pub seconds: f64,
    /// `batch * new_tokens / seconds`.
    pub tokens_per_s: f64,
    /// The prompts' token ids, for a reference to decode the same.
    #[serde(skip)]
    pub prompts: Vec<Vec<u32>>,
}

/// Generation settings.
#[derive(Debug, Clone)]
pub struct GenerateBench {
    /// Prompts decoded together (left-padded batch).
    pub batch: usize,
    /// Random prompt tokens per prompt.
    pub prompt_tokens: usize,
    /// Greedy tokens generated per prompt (no stop token).
    pub new_tokens: usize,
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs.
    pub runs: usize,
}

impl Default for GenerateBench {
    fn default() -> Self {
        Self {
            batch: 8,
            prompt_tokens: 64,
            new_tokens: 64,
            warmup: 1,
            runs: 3,
        }
    }
}

pub(super) fn median(v: &[f64]) -> f64 {
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

/// Random weights of `cfg`'s shapes (normal, std 0.02; norms 1; biases 0), Hugging Face
/// names, in `dtype` on `device` (drawn there: no host copy of a large vocabulary).
///
/// # Errors
/// Tensor errors.
pub fn random_model(cfg: &ModelConfig, dtype: DType, device: &Device) -> Result<Decoder> {
    let weights = weights_with(cfg, |shape, kind| {
        Ok(match kind {
            WeightKind::Embedding | WeightKind::Matrix => {
                Tensor::randn(0f32, 0.02, shape, device)?.to_dtype(dtype)?
            }
            WeightKind::Norm => Tensor::ones(shape, dtype, device)?,
            WeightKind::Bias => Tensor::zeros(shape, dtype, device)?,
        })
    })?;
    Ok(Decoder::load(
        VarBuilder::from_tensors(weights, dtype, device),
        cfg,
    )?)
}

/// FLOPs of one LoRA training step on `batch` x `seq` tokens (module docs).
pub fn train_step_flops(cfg: &ModelConfig, lora: &LoraConfig, batch: usize, seq: usize) -> f64 {
    let (h, i, v) = (
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
        cfg.vocab_size as f64,
    );
    let (q, kv) = (cfg.q_size() as f64, cfg.kv_size() as f64);
    let layers = cfg.num_hidden_layers as f64;
    let matmul_params = layers * (2.0 * h * q + 2.0 * h * kv + 3.0 * h * i) + v * h;
    let tokens = (batch * seq) as f64;
    let attention = 12.0
        * layers
        * batch as f64
        * cfg.num_attention_heads as f64
        * (seq * seq) as f64
        * cfg.head_dim as f64;
    // Each adapted projection: x A^T, (.) B^T forward; their input and weight gradients back.
    let lora_per_layer: f64 = lora
        .target_modules
        .iter()
        .map(|m| {
            let (fan_out, fan_in) = m.shape(cfg);
            6.0 * lora.rank as f64 * (fan_in + fan_out) as f64
        })
        .sum();
    4.0 * matmul_params * tokens + attention + layers * lora_per_layer * tokens
}

/// GFLOP/s of a plain square matmul of side 2048 in `dtype` on `device`: median of 3 timed
/// products after one untimed.
///
/// # Errors
/// Tensor errors.
pub fn matmul_gflops(dtype: DType, device: &Device) -> Result<f64> {
    const SIDE: usize = 2048;
    let a = Tensor::randn(0f32, 1.0, (SIDE, SIDE), device)?.to_dtype(dtype)?;
    let b = Tensor::randn(0f32, 1.0, (SIDE, SIDE), device)?.to_dtype(dtype)?;
    let mut times = vec![];
    for run in 0..4 {
        sync(device)?;
        let t0 = Instant::now();
        let c = a.matmul(&b)?;
        sync(device)?;
        drop(c);
        if run > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    Ok(2.0 * (SIDE as f64).powi(3) / median(&times) / 1e9)
}

/// Waits for the device's queued work (GPU timing); nothing on the CPU.
fn sync(device: &Device) -> Result<()> {
    Ok(device.synchronize()?)
}

/// Runs the training-step benchmark.
///
/// # Errors
/// Loader or tensor errors.
pub fn train_step(m: &BenchModel, b: &TrainStepBench) -> Result<TrainStepReport> {
    let device = &m.device;
    let mut model = m.load()?;
    let cfg = model.config().clone();
    let lora = LoraConfig::new(b.rank, 2.0 * b.rank as f64, 0.05, &["q_proj", "v_proj"])?;
    let adapter = Adapter::new(&lora, &cfg, 0, DType::F32, device)?;
    let vars = adapter.vars();
    let trainable_params = adapter.num_params();
    model.attach_adapter(adapter)?;
    model.set_memory_options(b.memory);
    model.set_training(Some(0))?;
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
    let batch = SequenceBatch::new(&seqs, 0, device)?;
    let n_predicted: usize = batch.n_tokens().iter().sum();
    let (mut times, mut fwd, mut bwd, mut optim, mut losses) =
        (vec![], vec![], vec![], vec![], vec![]);
    reset_gpu_peak_memory(device)?;
    for step in 0..b.warmup + b.steps {
        sync(device)?;
        let t0 = Instant::now();
        let lp = sequence_logprobs(&model, &batch)?;
        let loss = (lp.logp.sum_all()? * (-1.0 / n_predicted as f64))?;
        // Reading the loss waits for the forward pass on any device.
        let loss_value = loss.to_scalar::<f32>()? as f64;
        let t1 = Instant::now();
        let grads = model.backward(&loss)?;
        sync(device)?;
        let t2 = Instant::now();
        let g = opt.grads_from(&grads)?;
        drop(grads);
        opt.step(&g)?;
        sync(device)?;
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
    let flops = train_step_flops(&cfg, &lora, b.batch, b.seq);
    let matmul_gflops_per_s = matmul_gflops(m.dtype, device)?;
    Ok(TrainStepReport {
        context: BenchContext::new(m),
        s_per_step: s,
        step_times: times,
        forward_s: median(&fwd),
        backward_s: median(&bwd),
        optimizer_s: median(&optim),
        tokens_per_s: (b.batch * b.seq) as f64 / s,
        flops_per_step: flops,
        gflops_per_s: flops / s / 1e9,
        matmul_gflops_per_s,
        trainable_params,
        losses,
        batch: b.batch,
        seq: b.seq,
    })
}

/// Runs the generation benchmark: greedy decoding of random prompts with the KV cache, no
/// adapter (evaluation decodes from merged weights).
///
/// # Errors
/// Loader or tensor errors.
pub fn generate(m: &BenchModel, b: &GenerateBench) -> Result<GenerateReport> {
    let model = m.load()?;
    let vocab = model.config().vocab_size as u32;
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let prompts: Vec<Vec<u32>> = (0..b.batch)
        .map(|_| {
            (0..b.prompt_tokens)
                .map(|_| rng.random_range(0..vocab))
                .collect()
        })
        .collect();
    let cfg = GenerateConfig {
        max_new_tokens: b.new_tokens,
        temperature: 0.0,
        ..GenerateConfig::default()
    };
    reset_gpu_peak_memory(&m.device)?;
    let mut times = vec![];
    for run in 0..b.warmup + b.runs {
        let t0 = Instant::now();
        let out = generate_batch(&model, &prompts, &cfg, &[])?;
        let dt = t0.elapsed().as_secs_f64();
        debug_assert!(out.iter().all(|o| o.len() == b.new_tokens));
        if run >= b.warmup {
            times.push(dt);
        }
    }
    let s = median(&times);
    Ok(GenerateReport {
        context: BenchContext::new(m),
        batch: b.batch,
        prompt_tokens: b.prompt_tokens,
        new_tokens: b.new_tokens,
        seconds: s,
        tokens_per_s: (b.batch * b.new_tokens) as f64 / s,
        prompts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_bench_runs_and_the_loss_goes_down() {
        let cfg = fedpref_model::testing::tiny_config();
        let dev = Device::Cpu;
        assert_eq!(random_model(&cfg, DType::F32, &dev).unwrap().config(), &cfg);
        // The same loop as train_step on a tiny model: loss must fall over a few steps.
        let w = fedpref_model::testing::random_weights(&cfg, 4, DType::F32);
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

    #[test]
    fn flops_match_a_hand_count_for_smollm2() {
        // SmolLM2-135M: per layer q 576x576, k,v 576x192, o 576x576, mlp 3 x 576x1536; head
        // 49152x576. N = 30 * (2*331776 + 2*110592 + 2654208) + 28311552 = 134217728 + ...
        let cfg = BenchShape::Smollm2_135m.config();
        let per_layer = 2.0 * 576.0 * 576.0 + 2.0 * 576.0 * 192.0 + 3.0 * 576.0 * 1536.0;
        let n = 30.0 * per_layer + 49152.0 * 576.0;
        let tokens = 1024.0;
        let attention = 12.0 * 30.0 * 4.0 * 9.0 * 256.0 * 256.0 * 64.0;
        // r = 8 on q (576 -> 576) and v (576 -> 192): 6 r (in + out) per token and layer.
        let lora = 30.0 * 6.0 * 8.0 * ((576.0 + 576.0) + (576.0 + 192.0)) * tokens;
        let expected = 4.0 * n * tokens + attention + lora;
        let lora_cfg = LoraConfig::new(8, 16.0, 0.05, &["q_proj", "v_proj"]).unwrap();
        let got = train_step_flops(&cfg, &lora_cfg, 4, 256);
        assert!(
            (got - expected).abs() / expected < 1e-12,
            "{got} vs {expected}"
        );
    }

    #[test]
    fn shapes_parse_by_name_and_build() {
        use clap::ValueEnum;
        for shape in BenchShape::value_variants() {
            assert_eq!(BenchShape::from_str(shape.name(), false), Ok(*shape));
        }
        let err = BenchShape::from_str("llama-7b", false).unwrap_err();
        assert!(err.contains("llama-7b"), "{err}");
        // Qwen's q/k/v biases load: a tiny model of the same kind.
        let mut cfg = fedpref_model::testing::tiny_config();
        cfg.qkv_bias = true;
        cfg.architecture = Architecture::Qwen2;
        random_model(&cfg, DType::BF16, &Device::Cpu).unwrap();
    }
}

//! The model across precisions and devices: bf16 mixed precision against f32 (on the CPU,
//! always run), and CUDA against the CPU (built with the `cuda` feature only; run on a GPU
//! machine, see README "GPU").
//!
//! Tolerances. f32 on two devices differs only by summation order: 1e-3 on log-probs of a
//! random model is ~100x that rounding. bf16 keeps 8 significant bits (relative step 2^-8 ~
//! 0.4%) and the tiny test model has large activations (embedding std 1): measured here, the
//! summed log-probs moved by ~0.005 per answer token and the largest adapter gradient entry by
//! 4% of the largest; the bounds are 0.1 per token and 10%, with the adapter's f32 dtype
//! checked exactly.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::ModelConfig;
use crate::layers::decoder::{Decoder, MemoryOptions};
use crate::layers::lora::{Adapter, LoraConfig};
use crate::logprobs::{sequence_logprobs, MaskedSequence, SequenceBatch};
use crate::testing::{random_weights, tiny_config};

/// A model with a LoRA adapter whose B is non-zero (so every adapter gradient is non-zero).
fn model_with_adapter(
    cfg: &ModelConfig,
    weights: &HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
) -> Decoder {
    let vb = VarBuilder::from_tensors(weights.clone(), dtype, device);
    let mut model = Decoder::load(vb, cfg).unwrap();
    let lora = LoraConfig::new(4, 8.0, 0.0, &["q_proj", "v_proj", "down_proj"]).unwrap();
    let adapter = Adapter::new(&lora, cfg, 3, DType::F32, device).unwrap();
    let n = adapter.num_params();
    let flat: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 101) as f32 / 500.0 - 0.1)
        .collect();
    adapter.unflatten(&flat).unwrap();
    model.attach_adapter(adapter).unwrap();
    model
}

fn batch(device: &Device) -> SequenceBatch {
    let seqs = [
        MaskedSequence {
            ids: vec![1, 5, 9, 3, 30, 7, 2, 11],
            answer_mask: vec![false, false, false, true, true, true, true, true],
        },
        MaskedSequence {
            ids: vec![4, 4, 17, 8, 21],
            answer_mask: vec![false, false, true, true, true],
        },
    ];
    SequenceBatch::new(&seqs, 0, device).unwrap()
}

/// Summed answer log-probs and the adapter's gradients (flattened in adapter order).
fn logprobs_and_grads(model: &Decoder, device: &Device) -> (Vec<f32>, Vec<f32>) {
    logprobs_and_grads_of(model, &batch(device))
}

/// [`logprobs_and_grads`] of any batch.
fn logprobs_and_grads_of(model: &Decoder, batch: &SequenceBatch) -> (Vec<f32>, Vec<f32>) {
    let lp = sequence_logprobs(model, batch).unwrap().logp;
    let grads = model.backward(&lp.sum_all().unwrap()).unwrap();
    let mut flat = vec![];
    for var in model.adapter().unwrap().vars() {
        let g = grads
            .get(var.as_tensor())
            .expect("every adapter var has a gradient");
        assert_eq!(g.dtype(), DType::F32, "adapter gradients stay f32");
        flat.extend(g.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
    (lp.to_dtype(DType::F32).unwrap().to_vec1().unwrap(), flat)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Largest entry of `a - b` relative to the largest entry of `b`.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|v| v.abs()).fold(0.0, f32::max).max(1e-12);
    max_abs_diff(a, b) / scale
}

#[test]
fn bf16_mixed_precision_tracks_f32_and_keeps_the_adapter_f32() {
    let cfg = tiny_config();
    let w = random_weights(&cfg, 5, DType::F32);
    let cpu = Device::Cpu;
    let (lp32, g32) = logprobs_and_grads(&model_with_adapter(&cfg, &w, DType::F32, &cpu), &cpu);
    let model16 = model_with_adapter(&cfg, &w, DType::BF16, &cpu);
    assert_eq!(model16.dtype(), DType::BF16);
    let (lp16, g16) = logprobs_and_grads(&model16, &cpu);
    let tokens = [5.0f32, 3.0];
    for ((a, b), n) in lp16.iter().zip(&lp32).zip(tokens) {
        assert!(
            (a - b).abs() < 0.1 * n,
            "bf16 {a} vs f32 {b} over {n} tokens"
        );
    }
    // Gradients: same direction and size to bf16's precision through a few layers.
    let rel = rel_diff(&g16, &g32);
    assert!(rel < 0.1, "bf16 adapter gradients off by {rel} (relative)");
}

/// With checkpointed layers and LoRA dropout, the gradient of the summed log-probs at a
/// fixed seed against a central difference along itself: a replay that drew other masks than
/// the forward pass would give the gradient of another function.
fn replayed_gradient_is_the_gradient(device: &Device) {
    let cfg = tiny_config();
    let w = random_weights(&cfg, 13, DType::F32);
    let lora = LoraConfig::new(4, 8.0, 0.3, &["q_proj", "v_proj", "down_proj"]).unwrap();
    let loss_and_grad = |flat: &[f32]| -> (f64, Vec<f32>) {
        let vb = VarBuilder::from_tensors(w.clone(), DType::F32, device);
        let mut m = Decoder::load(vb, &cfg).unwrap();
        let adapter = Adapter::new(&lora, &cfg, 3, DType::F32, device).unwrap();
        adapter.unflatten(flat).unwrap();
        m.attach_adapter(adapter).unwrap();
        m.set_memory_options(MemoryOptions {
            checkpoint_layers: true,
            ..MemoryOptions::default()
        });
        m.set_training(Some(3)).unwrap();
        let (lp, g) = logprobs_and_grads(&m, device);
        (lp.iter().map(|&v| f64::from(v)).sum(), g)
    };
    let n = Adapter::new(&lora, &cfg, 3, DType::F32, device)
        .unwrap()
        .num_params();
    let theta: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 101) as f32 / 500.0 - 0.1)
        .collect();
    let (_, g) = loss_and_grad(&theta);
    assert_eq!(loss_and_grad(&theta).1, g, "same seed, same gradient");
    let norm = g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    let eps = 1e-2;
    let along = |sign: f64| -> Vec<f32> {
        theta
            .iter()
            .zip(&g)
            .map(|(&t, &gi)| t + (sign * eps * f64::from(gi) / norm) as f32)
            .collect()
    };
    // Measured on the CPU: 5e-5 relative with the right masks, 8% with fresh ones.
    let slope = (loss_and_grad(&along(1.0)).0 - loss_and_grad(&along(-1.0)).0) / (2.0 * eps);
    assert!(
        (slope - norm).abs() < 5e-3 * norm,
        "slope along the gradient {slope}, gradient norm {norm}"
    );
}

#[test]
fn checkpointed_dropout_replays_the_forward_masks() {
    replayed_gradient_is_the_gradient(&Device::Cpu);
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use crate::generate::{generate_batch, GenerateConfig};

    fn gpu() -> Device {
        Device::new_cuda(0).expect("these tests need a CUDA GPU (cuda:0)")
    }

    /// A model larger than the tiny one (more rounding, real-size head dim).
    fn small_config() -> ModelConfig {
        ModelConfig {
            vocab_size: 512,
            hidden_size: 256,
            intermediate_size: 512,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 64,
            max_position_embeddings: 256,
            ..tiny_config()
        }
    }

    #[test]
    fn f32_logprobs_and_lora_gradients_on_cuda_equal_the_cpu() {
        for cfg in [tiny_config(), small_config()] {
            let w = random_weights(&cfg, 7, DType::F32);
            let (lp_cpu, g_cpu) = logprobs_and_grads(
                &model_with_adapter(&cfg, &w, DType::F32, &Device::Cpu),
                &Device::Cpu,
            );
            let dev = gpu();
            let (lp_gpu, g_gpu) =
                logprobs_and_grads(&model_with_adapter(&cfg, &w, DType::F32, &dev), &dev);
            let d = max_abs_diff(&lp_gpu, &lp_cpu);
            assert!(d < 1e-3, "log-probs differ by {d}");
            let rel = rel_diff(&g_gpu, &g_cpu);
            assert!(rel < 1e-3, "gradients differ by {rel} (relative)");
        }
    }

    #[test]
    fn chunked_head_attention_and_rms_norm_on_cuda_equal_their_twins() {
        // f32 to rounding (cuBLAS sums in another order than the CPU); bf16 as on the CPU.
        for (dtype, tol) in [(DType::F32, 1e-4), (DType::BF16, 2e-2)] {
            let diffs =
                crate::kernels::chunked_attention::tests::chunked_against_twin(&gpu(), dtype);
            assert!(
                diffs.iter().all(|&d| d < tol),
                "{dtype:?} attention: {diffs:?}"
            );
        }
        for (dtype, tol) in [(DType::F32, 1e-5), (DType::BF16, 2e-2)] {
            let [dy, dg] = crate::kernels::cuda::rms_norm::tests::against_twin(&gpu(), dtype);
            assert!(dy < tol && dg < tol, "{dtype:?} rms-norm: {dy}, {dg}");
        }
        let (dy, dg, scale) =
            crate::kernels::chunked_head::tests::chunked_against_twin(&gpu(), DType::F32);
        assert!(
            dy < 1e-4 && dg < 1e-4 * scale.max(1.0),
            "head: {dy}, {dg} of {scale}"
        );
    }

    #[test]
    fn long_rows_with_chunks_and_checkpoints_on_cuda_equal_the_cpu() {
        // 200 and 150 positions: two and more blocks of queries, and 290 answer tokens in
        // head chunks of 64.
        let cfg = small_config();
        let w = random_weights(&cfg, 12, DType::F32);
        let seqs: Vec<MaskedSequence> = [200usize, 150]
            .iter()
            .map(|&n| MaskedSequence {
                ids: (0..n)
                    .map(|i| ((i * 37 + n) % cfg.vocab_size) as u32)
                    .collect(),
                answer_mask: (0..n).map(|i| i >= 30).collect(),
            })
            .collect();
        let run = |dev: &Device, memory: MemoryOptions| {
            let mut m = model_with_adapter(&cfg, &w, DType::F32, dev);
            m.set_memory_options(memory);
            logprobs_and_grads_of(&m, &SequenceBatch::new(&seqs, 0, dev).unwrap())
        };
        let (lp_cpu, g_cpu) = run(&Device::Cpu, MemoryOptions::default());
        let saving = MemoryOptions {
            head_chunk: 64,
            checkpoint_layers: true,
        };
        for memory in [MemoryOptions::default(), saving] {
            let (lp, g) = run(&gpu(), memory);
            // Summed over up to 170 tokens: 1e-3 per token's worth of rounding.
            let d = max_abs_diff(&lp, &lp_cpu);
            assert!(d < 0.05, "{memory:?}: log-probs differ by {d}");
            let rel = rel_diff(&g, &g_cpu);
            assert!(
                rel < 1e-3,
                "{memory:?}: gradients differ by {rel} (relative)"
            );
        }
    }

    #[test]
    fn checkpointed_dropout_on_cuda_replays_the_forward_masks() {
        replayed_gradient_is_the_gradient(&gpu());
    }

    #[test]
    fn last_logits_on_cuda_equal_the_cpu_f32_and_bf16() {
        let cfg = small_config();
        let w = random_weights(&cfg, 8, DType::F32);
        let ids = Tensor::new(
            &[[1u32, 5, 9, 3, 30, 7, 2], [4, 4, 17, 8, 0, 21, 11]],
            &Device::Cpu,
        )
        .unwrap();
        let logits = |dtype: DType, dev: &Device| -> Vec<f32> {
            let m = Decoder::load(VarBuilder::from_tensors(w.clone(), dtype, dev), &cfg).unwrap();
            m.last_logits(&ids.to_device(dev).unwrap(), None)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let cpu = logits(DType::F32, &Device::Cpu);
        let dev = gpu();
        let d32 = max_abs_diff(&logits(DType::F32, &dev), &cpu);
        assert!(d32 < 1e-3, "f32 logits differ by {d32}");
        let rel16 = rel_diff(&logits(DType::BF16, &dev), &cpu);
        assert!(
            rel16 < 0.05,
            "bf16 logits differ by {rel16} (relative to the largest)"
        );
    }

    #[test]
    fn greedy_generation_on_cuda_equals_the_cpu() {
        let cfg = small_config();
        let w = random_weights(&cfg, 9, DType::F32);
        let gen = |dev: &Device| {
            let m =
                Decoder::load(VarBuilder::from_tensors(w.clone(), DType::F32, dev), &cfg).unwrap();
            let settings = GenerateConfig {
                max_new_tokens: 12,
                temperature: 0.0,
                ..GenerateConfig::default()
            };
            generate_batch(&m, &[vec![1, 2, 3, 4], vec![9, 8]], &settings, &[]).unwrap()
        };
        assert_eq!(gen(&gpu()), gen(&Device::Cpu));
    }

    #[test]
    fn dropout_on_cuda_is_seeded_and_drops_the_right_share() {
        let dev = gpu();
        let cfg = tiny_config();
        let w = random_weights(&cfg, 10, DType::F32);
        let run = |seed: u64| -> Vec<f32> {
            let mut m = model_with_adapter(&cfg, &w, DType::F32, &dev);
            m.set_training(Some(seed)).unwrap();
            let x = Tensor::ones((64, 1024), DType::F32, &dev).unwrap();
            let y = m.ctx().dropout(&x, 0.25).unwrap();
            y.flatten_all().unwrap().to_vec1().unwrap()
        };
        let a = run(1);
        assert_eq!(a, run(1), "same seed, same mask");
        assert_ne!(a, run(2), "another seed, another mask");
        let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
        // 65 536 Bernoulli(0.25) draws: standard deviation 0.0017; 0.01 is ~6 sigma.
        assert!((dropped - 0.25).abs() < 0.01, "dropped share {dropped}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    }
}

//! Text generation with a KV cache: greedy or temperature / top-p (nucleus) sampling, stopping
//! at any stop id (EOS, the template's end-of-turn token) or after `max_new_tokens`.
//!
//! Fed by a [`Decoder`] (for speed, pass [`Decoder::merged`] when an adapter is attached: same
//! outputs, no LoRA branch) and prompt ids (from the chat template); feeds evaluation/scorers.
//! The prompt is run once, then one token per step reads the cached keys/values.

pub mod kv_cache;

use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::generate::kv_cache::KvCache;
use crate::layers::decoder::Decoder;
use crate::{Error, Result};

/// How to pick each next token.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Upper bound on generated tokens (stop token included).
    pub max_new_tokens: usize,
    /// `0.0` = greedy (argmax); otherwise logits are divided by it before sampling.
    pub temperature: f64,
    /// Nucleus: sample among the most likely tokens whose probabilities sum to at least this.
    pub top_p: f64,
    /// Seed of the sampling generator.
    pub seed: u64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Samples from `softmax(logits / temperature)` restricted to the top-p nucleus.
pub fn sample_top_p(logits: &[f32], temperature: f64, top_p: f64, rng: &mut StdRng) -> usize {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i, ((l as f64 - max) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept = 0.0;
    let mut n = 0;
    for (_, p) in &probs {
        kept += p / total;
        n += 1;
        if kept >= top_p {
            break;
        }
    }
    let mut r = rng.random::<f64>() * probs[..n].iter().map(|p| p.1).sum::<f64>();
    for (i, p) in &probs[..n] {
        r -= p;
        if r <= 0.0 {
            return *i;
        }
    }
    probs[n - 1].0
}

/// Generates a continuation of `prompt`; returns the new ids (the stop id included when hit).
///
/// # Errors
/// [`Error::ModelInput`] for an empty prompt or one past the context; tensor errors.
pub fn generate(
    model: &Decoder,
    prompt: &[u32],
    cfg: &GenerateConfig,
    stop_ids: &[u32],
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(Error::ModelInput {
            message: "cannot generate from an empty prompt".into(),
        });
    }
    let max_pos = model.config().max_position_embeddings;
    let budget = cfg.max_new_tokens.min(max_pos.saturating_sub(prompt.len()));
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut cache = KvCache::new(model.config().num_hidden_layers);
    let mut input = Tensor::from_slice(prompt, (1, prompt.len()), model.device())?;
    let mut out = Vec::new();
    for _ in 0..budget {
        let logits = model
            .last_logits(&input, Some(&mut cache))?
            .squeeze(0)?
            .to_dtype(DType::F32)?;
        let next = if cfg.temperature <= 0.0 && !logits.device().is_cpu() {
            // Only the id crosses to the host.
            logits.argmax(0)?.to_scalar::<u32>()?
        } else {
            let logits: Vec<f32> = logits.to_vec1()?;
            if cfg.temperature <= 0.0 {
                argmax(&logits) as u32
            } else {
                sample_top_p(&logits, cfg.temperature, cfg.top_p, &mut rng) as u32
            }
        };
        out.push(next);
        if stop_ids.contains(&next) {
            break;
        }
        input = Tensor::from_slice(&[next], (1, 1), model.device())?;
    }
    Ok(out)
}

/// Generates continuations of several prompts at once (left-padded batch, one KV cache):
/// the same ids as [`generate`] on each prompt for greedy decoding, with fewer, larger matmuls.
/// Row `r` samples with seed `cfg.seed + r`. Finished rows keep decoding a stop id (ignored)
/// until every row has stopped or the budget is spent.
///
/// # Errors
/// [`Error::ModelInput`] for an empty prompt list or prompt; tensor errors.
pub fn generate_batch(
    model: &Decoder,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
    stop_ids: &[u32],
) -> Result<Vec<Vec<u32>>> {
    if prompts.is_empty() || prompts.iter().any(|p| p.is_empty()) {
        return Err(Error::ModelInput {
            message: "generate_batch needs non-empty prompts".into(),
        });
    }
    if prompts.len() == 1 {
        return Ok(vec![generate(model, &prompts[0], cfg, stop_ids)?]);
    }
    let b = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let pads: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
    let filler = stop_ids.first().copied().unwrap_or(0);
    let mut ids = Vec::with_capacity(b * longest);
    for (p, &pad) in prompts.iter().zip(&pads) {
        ids.extend(std::iter::repeat_n(filler, pad));
        ids.extend_from_slice(p);
    }
    let max_pos = model.config().max_position_embeddings;
    let budget = cfg.max_new_tokens.min(max_pos.saturating_sub(longest));
    let mut rngs: Vec<StdRng> = (0..b)
        .map(|r| StdRng::seed_from_u64(cfg.seed.wrapping_add(r as u64)))
        .collect();
    let mut cache = KvCache::new(model.config().num_hidden_layers);
    let ctx = crate::layers::context::ForwardCtx {
        adapter: model.adapter_enabled(),
        dropout_rng: None,
        left_pads: Some(&pads),
        packing: None,
        detached: false,
    };
    let mut input = Tensor::from_vec(ids, (b, longest), model.device())?;
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut done = vec![false; b];
    for _ in 0..budget {
        let h = model.hidden_states_with(&input, Some(&mut cache), &ctx)?;
        let s = h.dim(1)?;
        let logits = model
            .head(&h.narrow(1, s - 1, 1)?.squeeze(1)?)?
            .to_dtype(DType::F32)?;
        // Greedy on a GPU: only the argmax ids cross to the host, not (batch, vocab) logits.
        let picks: Option<Vec<u32>> = if cfg.temperature <= 0.0 && !logits.device().is_cpu() {
            Some(logits.argmax(1)?.to_vec1()?)
        } else {
            None
        };
        let rows: Vec<Vec<f32>> = if picks.is_none() {
            logits.to_vec2()?
        } else {
            Vec::new()
        };
        let mut next_ids = Vec::with_capacity(b);
        for r in 0..b {
            let next = if done[r] {
                filler
            } else if let Some(picks) = &picks {
                picks[r]
            } else if cfg.temperature <= 0.0 {
                argmax(&rows[r]) as u32
            } else {
                sample_top_p(&rows[r], cfg.temperature, cfg.top_p, &mut rngs[r]) as u32
            };
            if !done[r] {
                out[r].push(next);
                done[r] = stop_ids.contains(&next);
            }
            next_ids.push(next);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        input = Tensor::from_vec(next_ids, (b, 1), model.device())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_and_nucleus() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, -1.0]), 1);
        let mut rng = StdRng::seed_from_u64(1);
        // top_p small: only the most likely token survives.
        for _ in 0..20 {
            assert_eq!(sample_top_p(&[0.0, 5.0, 1.0], 1.0, 0.1, &mut rng), 1);
        }
        // Flat logits, full nucleus: every token shows up.
        let mut seen = [false; 3];
        for _ in 0..200 {
            seen[sample_top_p(&[1.0, 1.0, 1.0], 1.0, 1.0, &mut rng)] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn smollm2_greedy_answer_names_paris() {
        use crate::text::chat_template::{ChatMessage, ChatTemplate};
        let (model, tok) = crate::testing::smollm2();
        let (bos, eos) = (tok.bos().unwrap().0, tok.eos().unwrap().0);
        let template = ChatTemplate::new(tok.chat_template().unwrap(), bos, eos).unwrap();
        let prompt = template
            .render(
                &[ChatMessage::new("user", "What is the capital of France?")],
                true,
            )
            .unwrap();
        let ids = tok.encode(&prompt).unwrap();
        let cfg = GenerateConfig {
            max_new_tokens: 24,
            ..Default::default()
        };
        let out = generate(model, &ids, &cfg, &tok.stop_ids()).unwrap();
        let text = tok.decode(&out, true).unwrap();
        assert!(text.contains("Paris"), "{text:?}");
        // Batched with a longer prompt (so this one is left-padded): the same answer.
        let other = template
            .render(
                &[ChatMessage::new(
                    "user",
                    "Name three primary colors, please.",
                )],
                true,
            )
            .unwrap();
        let prompts = vec![ids.clone(), tok.encode(&other).unwrap()];
        let batched = generate_batch(model, &prompts, &cfg, &tok.stop_ids()).unwrap();
        assert_eq!(batched[0], out);
        assert_eq!(
            batched[1],
            generate(model, &prompts[1], &cfg, &tok.stop_ids()).unwrap()
        );
        // Greedy decoding with the cache equals re-running the whole sequence each step.
        let mut all = ids.clone();
        for &next in out.iter().take(3) {
            let x = Tensor::from_slice(&all, (1, all.len()), model.device()).unwrap();
            let logits: Vec<f32> = model
                .last_logits(&x, None)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(argmax(&logits) as u32, next);
            all.push(next);
        }
    }

    #[test]
    fn batched_greedy_equals_one_by_one() {
        use crate::testing::{random_weights, tiny_config};
        use candle_nn::VarBuilder;
        let cfg = tiny_config();
        let w = random_weights(&cfg, 31, DType::F32);
        let model = Decoder::load(
            VarBuilder::from_tensors(w, DType::F32, &candle_core::Device::Cpu),
            &cfg,
        )
        .unwrap();
        let prompts = vec![vec![1u32, 5, 9, 3, 30], vec![4, 17], vec![8, 8, 8, 12]];
        let g = GenerateConfig {
            max_new_tokens: 6,
            ..Default::default()
        };
        let batched = generate_batch(&model, &prompts, &g, &[]).unwrap();
        for (p, got) in prompts.iter().zip(&batched) {
            assert_eq!(got, &generate(&model, p, &g, &[]).unwrap(), "prompt {p:?}");
        }
        // A stop id ends only its own row.
        let stop = batched[1][2];
        let with_stop = generate_batch(&model, &prompts, &g, &[stop]).unwrap();
        for (p, got) in prompts.iter().zip(&with_stop) {
            assert_eq!(
                got,
                &generate(&model, p, &g, &[stop]).unwrap(),
                "prompt {p:?}"
            );
        }
    }
}

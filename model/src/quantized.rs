//! Inference on a quantized GGUF model with candle's k-quant CPU kernels (or CUDA), for an LLM
//! judge: the weights stay quantized (a 1.5B Q4_K_M judge takes about 1 GB instead of 6), and
//! nothing is trained. [`QuantizedModel`] reads the next-token probabilities after a prompt
//! ([`QuantizedModel::option_logprobs`], what a probability-read verdict needs: one pass over
//! the prompt) and generates text ([`QuantizedModel::generate`]).
//!
//! The layers are candle-transformers' `quantized_qwen2` and `quantized_llama`; the tokenizer
//! and chat template are this crate's, read from the same file.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2};
use rand::{rngs::StdRng, SeedableRng};

use crate::config::Architecture;
use crate::generate::{argmax, sample_top_p, GenerateConfig};
use crate::io::gguf::GgufFile;
use crate::options::{argmax_f64, continuation_path, log_softmax, read_options};
use crate::text::chat_template::ChatTemplate;
use crate::text::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// The layers of one architecture.
enum Layers {
    Qwen2(quantized_qwen2::ModelWeights),
    Llama(quantized_llama::ModelWeights),
}

impl Layers {
    /// Logits of the last position of `ids` (`(1, seq)`), the first at position `offset` of
    /// the cache.
    fn forward(&mut self, ids: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
        match self {
            Layers::Qwen2(m) => m.forward(ids, offset),
            Layers::Llama(m) => m.forward(ids, offset),
        }
    }

    /// Forgets the cached prompt (quantized_llama replaces its cache whenever a forward
    /// starts at position 0, so only qwen2 needs clearing).
    fn clear(&mut self) {
        if let Layers::Qwen2(m) = self {
            m.clear_kv_cache();
        }
    }
}

/// A quantized GGUF model for inference.
pub struct QuantizedModel {
    layers: Layers,
    tokenizer: TextTokenizer,
    template: ChatTemplate,
    device: Device,
    path: PathBuf,
}

impl std::fmt::Debug for QuantizedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantizedModel")
            .field("path", &self.path)
            .finish()
    }
}

impl QuantizedModel {
    /// Loads the GGUF file at `path` (qwen2 or llama) onto `device`.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::ModelFormat`] naming the file; an unsupported architecture or
    /// tokenizer.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let architecture = file.config()?.architecture;
        let tokenizer = TextTokenizer::from_gguf(&file)?;
        let bos = tokenizer.bos().map_or("", |b| b.0);
        let eos = tokenizer.eos().map_or("", |e| e.0);
        let template = match tokenizer.chat_template() {
            Some(source) => ChatTemplate::new(source, bos, eos)?,
            None => ChatTemplate::alpaca(bos, eos)?,
        };
        let format = |e: candle_core::Error| Error::ModelFormat {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut reader = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let content = crate::io::gguf::read_content(&mut reader, path)?;
        let layers = match architecture {
            Architecture::Qwen2 => Layers::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(format)?,
            ),
            Architecture::Llama => Layers::Llama(
                quantized_llama::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(format)?,
            ),
        };
        Ok(Self {
            layers,
            tokenizer,
            template,
            device: device.clone(),
            path: path.to_path_buf(),
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Its chat template (the file's, or Alpaca's when it has none).
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Log-probabilities (nats, over the whole vocabulary) of the token after `ids`, each
    /// forward starting afresh.
    ///
    /// # Errors
    /// [`Error::ModelInput`] for an empty prompt; tensor errors.
    pub fn next_logprobs(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Err(Error::input("an empty prompt has no next token"));
        }
        self.layers.clear();
        let logits = self.step(ids, 0)?;
        Ok(log_softmax(&logits))
    }

    /// `log P(option)` for every option at each of `positions` positions, position-major: at
    /// the first the options follow `ids`; position `k + 1` follows position `k`'s most likely
    /// option and `separator` (a line of scores for several answers, read one by one).
    ///
    /// Options of several tokens must lie on one path (each a prefix of the longest, as `1`
    /// and `10`: tokens `1`, then `1 0`); reading them continues the cached prompt along that
    /// path. When the most likely option then leaves the path, the prompt is run again from
    /// the start with that option, since the cache cannot step back.
    ///
    /// # Errors
    /// [`Error::ModelInput`] for an empty prompt or option, or options of several tokens that
    /// branch; tensor errors.
    pub fn option_logprobs(
        &mut self,
        ids: &[u32],
        options: &[Vec<u32>],
        positions: usize,
        separator: &[u32],
    ) -> Result<Vec<f64>> {
        let path = continuation_path(options)?;
        let mut context = ids.to_vec();
        // The tokens the cache holds beyond `context`, and the distribution after them.
        let mut dist = self.next_logprobs(&context)?;
        let mut values = Vec::with_capacity(positions * options.len());
        for position in 0..positions {
            let mut dists = vec![dist];
            let mut cached: Vec<u32> = Vec::new();
            for &token in &path[..path.len() - 1] {
                let logits = self.step(&[token], context.len() + cached.len())?;
                cached.push(token);
                dists.push(log_softmax(&logits));
            }
            let read = read_options(&dists, options)?;
            let best = &options[argmax_f64(&read)];
            values.extend(read);
            if position + 1 == positions {
                break;
            }
            let mut next: Vec<u32> = best.iter().chain(separator).copied().collect();
            dist = if next.starts_with(&cached) {
                // Continue the cache: feed what it does not hold yet.
                let rest = next.split_off(cached.len());
                let logits = self.step(&rest, context.len() + cached.len())?;
                context.extend(cached.iter().chain(&rest));
                log_softmax(&logits)
            } else {
                context.extend(&next);
                self.next_logprobs(&context)?
            };
        }
        Ok(values)
    }

    /// Generates up to `config.max_new_tokens` tokens after `ids` (greedy at temperature 0),
    /// stopping at any of `stop`; the new ids, the stop token included when one was hit.
    ///
    /// # Errors
    /// [`Error::ModelInput`] for an empty prompt; tensor errors.
    pub fn generate(
        &mut self,
        ids: &[u32],
        config: &GenerateConfig,
        stop: &[u32],
    ) -> Result<Vec<u32>> {
        let mut rng = StdRng::seed_from_u64(config.seed);
        // Log-probabilities differ from logits by a constant: same argmax, same sampling.
        let mut logits = self.next_logprobs(ids)?;
        let mut out = Vec::new();
        for _ in 0..config.max_new_tokens {
            let next = if config.temperature <= 0.0 {
                argmax(&logits) as u32
            } else {
                sample_top_p(&logits, config.temperature, config.top_p, &mut rng) as u32
            };
            out.push(next);
            if stop.contains(&next) {
                break;
            }
            logits = self.step(&[next], ids.len() + out.len() - 1)?;
        }
        Ok(out)
    }

    /// Runs `ids` at cache position `offset`; the last position's logits.
    fn step(&mut self, ids: &[u32], offset: usize) -> Result<Vec<f32>> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let logits = self.layers.forward(&input, offset)?;
        Ok(logits
            .squeeze(0)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::DType;
    use candle_nn::VarBuilder;

    use super::*;
    use crate::layers::decoder::Decoder;
    use crate::testing::{tiny_config, write_tiny_gguf};

    /// The same tiny llama as a quantized model and as the training decoder; the MLP in Q8_0
    /// when `quantize_mlp`.
    fn tiny_model(quantize_mlp: bool) -> (tempfile::TempDir, QuantizedModel, Decoder) {
        let mut cfg = tiny_config();
        (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim) = (32, 64, 8);
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("tiny.gguf");
        let weights = write_tiny_gguf(&path, &cfg, 3, quantize_mlp).expect("write");
        let decoder = Decoder::load(
            VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
            &cfg,
        )
        .expect("decoder");
        let quantized = QuantizedModel::load(&path, &Device::Cpu).expect("load");
        (dir, quantized, decoder)
    }

    /// The largest difference between the quantized model's next-token log-probs and the
    /// training decoder's, on one prompt.
    fn largest_difference(quantize_mlp: bool) -> f32 {
        let (_dir, mut quantized, decoder) = tiny_model(quantize_mlp);
        let ids = [1u32, 7, 4, 19, 3];
        let got = quantized.next_logprobs(&ids).expect("logprobs");
        let logits = decoder
            .logits(&Tensor::new(&[ids], &Device::Cpu).expect("ids"))
            .expect("logits");
        let last: Vec<f32> = logits
            .squeeze(0)
            .and_then(|l| l.get(ids.len() - 1))
            .and_then(|l| l.to_vec1())
            .expect("last row");
        let expected = log_softmax(&last);
        let total: f64 = got.iter().map(|&l| f64::from(l).exp()).sum();
        assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
        got.iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    }

    #[test]
    fn next_token_logprobs_equal_the_training_decoder_on_the_same_file() {
        // f32 weights: the same sums in another order.
        let exact = largest_difference(false);
        assert!(exact < 1e-4, "max |diff| {exact}");
        // Q8_0 weights: candle's quantized matmul also rounds the activations to 8 bits
        // (steps of 1/127 of a block's largest value), a few hundredths on these logits.
        let quantized = largest_difference(true);
        assert!(quantized < 0.1, "max |diff| {quantized}");
    }

    #[test]
    fn option_logprobs_chain_a_continuation_like_separate_forwards() {
        let (_dir, mut model, _) = tiny_model(true);
        let prompt = [1u32, 5, 9];
        let options = vec![vec![6], vec![6, 11], vec![8]];
        let got = model
            .option_logprobs(&prompt, &options, 1, &[])
            .expect("options");
        let first = model.next_logprobs(&prompt).expect("first");
        let second = model.next_logprobs(&[1, 5, 9, 6]).expect("second");
        let expected = [
            f64::from(first[6]),
            f64::from(first[6]) + f64::from(second[11]),
            f64::from(first[8]),
        ];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-4, "{got:?} vs {expected:?}");
        }
        let branching = vec![vec![6, 11], vec![8, 2]];
        assert!(model.option_logprobs(&prompt, &branching, 1, &[]).is_err());
    }

    #[test]
    fn the_cached_reading_equals_the_plain_one_over_fresh_forwards() {
        let (_dir, mut model, _) = tiny_model(true);
        let prompt = [1u32, 5, 9];
        let options = vec![vec![6], vec![6, 11], vec![8], vec![13]];
        let got = model
            .option_logprobs(&prompt, &options, 3, &[20])
            .expect("options");
        let mut fresh = |ids: &[u32]| model.next_logprobs(ids);
        let plain = crate::options::option_logprobs(&mut fresh, &prompt, &options, 3, &[20])
            .expect("plain");
        assert_eq!(got.len(), 3 * options.len());
        for (a, b) in got.iter().zip(&plain) {
            assert!((a - b).abs() < 1e-4, "{got:?} vs {plain:?}");
        }
    }

    #[test]
    fn greedy_generation_follows_the_argmax_and_stops() {
        let (_dir, mut model, _) = tiny_model(true);
        let prompt = [1u32, 5, 9];
        let config = GenerateConfig {
            max_new_tokens: 4,
            ..GenerateConfig::default()
        };
        let out = model.generate(&prompt, &config, &[]).expect("generate");
        assert_eq!(out.len(), 4);
        let first = model.next_logprobs(&prompt).expect("first");
        assert_eq!(out[0], argmax(&first) as u32);
        let stopped = model.generate(&prompt, &config, &[out[0]]).expect("stop");
        assert_eq!(stopped, [out[0]]);
    }
}

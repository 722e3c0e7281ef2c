//! The llama-family decoder ([`Decoder`]): embedding, decoder layers, final RMSNorm and the
//! output head (tied to the embedding or not), with an optional LoRA [`Adapter`].
//!
//! Fed by the loaders (a [`VarBuilder`] over Hugging Face tensor names); feeds the sequence
//! log-probs ([`crate::logprobs`]) and generation ([`crate::generate`]). Frozen weights are
//! plain tensors; only the adapter's vars receive gradients. The reference model is this same
//! decoder with the adapter switched off ([`Decoder::set_adapter_enabled`]).

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::ModelConfig;
use crate::generate::kv_cache::KvCache;
use crate::kernels::chunked_head::{head_log_softmax_chunked, DEFAULT_HEAD_CHUNK};
use crate::kernels::frozen_matmul::frozen_matmul;
use crate::layers::checkpoint::{checkpointed_forward, CheckpointGrads};
use crate::layers::context::ForwardCtx;
use crate::layers::layer::DecoderLayer;
use crate::layers::lora::Adapter;
use crate::layers::norm::RmsNorm;
use crate::layers::rope::{Rope, RopeStyle};
use crate::{Error, Result};

/// A llama / qwen2 decoder with optional LoRA.
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: ModelConfig,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Tensor,
    rope: Rope,
    adapter: Option<Adapter>,
    adapter_enabled: bool,
    dropout_rng: Option<Arc<Mutex<StdRng>>>,
    memory: MemoryOptions,
    checkpoint_grads: Arc<CheckpointGrads>,
}

/// How a training pass trades computation for memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryOptions {
    /// Answer positions whose logits exist at once ([`crate::kernels::chunked_head`]): the
    /// head's memory stops growing with tokens x vocabulary, for one more head matmul per
    /// step once a batch has more answer tokens than this.
    pub head_chunk: usize,
    /// Keep only each decoder layer's input for backward and run the layer again there
    /// ([`crate::layers::checkpoint`]): activation memory of one layer instead of all, for
    /// about one more forward pass per step.
    pub checkpoint_layers: bool,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            head_chunk: DEFAULT_HEAD_CHUNK,
            checkpoint_layers: false,
        }
    }
}

impl Decoder {
    /// Loads a decoder from Hugging Face names (`model.embed_tokens.weight`,
    /// `model.layers.N...`, `model.norm.weight`, `lm_head.weight` unless tied), RoPE in the
    /// Hugging Face (half) layout.
    ///
    /// # Errors
    /// A missing tensor or wrong shape, named by the VarBuilder, with the layer index.
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        Self::load_with_rope(vb, cfg, RopeStyle::Half)
    }

    /// [`Self::load`] with an explicit RoPE layout (interleaved for raw GGUF llama q/k rows).
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn load_with_rope(vb: VarBuilder, cfg: &ModelConfig, style: RopeStyle) -> Result<Self> {
        let embed_tokens = vb
            .pp("model.embed_tokens")
            .get((cfg.vocab_size, cfg.hidden_size), "weight")?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(vb.pp(format!("model.layers.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(vb.pp("model.norm"), cfg.hidden_size, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings {
            embed_tokens.clone()
        } else {
            vb.pp("lm_head")
                .get((cfg.vocab_size, cfg.hidden_size), "weight")?
        };
        let rope = Rope::new(cfg, style, vb.dtype(), vb.device())?;
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope,
            adapter: None,
            adapter_enabled: true,
            dropout_rng: None,
            memory: MemoryOptions::default(),
            checkpoint_grads: Arc::default(),
        })
    }

    /// Sets how training passes trade computation for memory.
    pub fn set_memory_options(&mut self, memory: MemoryOptions) {
        self.memory = memory;
    }

    /// How training passes trade computation for memory.
    pub fn memory_options(&self) -> MemoryOptions {
        self.memory
    }

    /// The gradients of `loss` (a scalar), with those of checkpointed layers' LoRA vars
    /// added in: use this rather than `loss.backward()` on anything computed by this decoder.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn backward(&self, loss: &Tensor) -> Result<candle_core::backprop::GradStore> {
        self.checkpoint_grads.clear();
        let mut store = loss.backward()?;
        self.checkpoint_grads.drain_into(&mut store)?;
        Ok(store)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.embed_tokens.device()
    }

    /// The weights' dtype.
    pub fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    /// The decoder layers.
    pub fn layers(&self) -> &[DecoderLayer] {
        &self.layers
    }

    /// The output head `(vocab, hidden)`.
    pub fn lm_head(&self) -> &Tensor {
        &self.lm_head
    }

    /// Attaches `adapter` (replacing any other) and enables it.
    ///
    /// # Errors
    /// [`Error::Adapter`] when the adapter was built for a model with other layer count.
    pub fn attach_adapter(&mut self, adapter: Adapter) -> Result<()> {
        if let Some(p) = adapter
            .pairs()
            .iter()
            .find(|p| p.layer >= self.layers.len())
        {
            return Err(Error::Adapter {
                path: "-".into(),
                message: format!(
                    "adapter targets layer {} but the model has {} layers",
                    p.layer,
                    self.layers.len()
                ),
            });
        }
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.set_adapter(Some(&adapter), i);
        }
        self.adapter = Some(adapter);
        self.adapter_enabled = true;
        Ok(())
    }

    /// Removes and returns the adapter.
    pub fn detach_adapter(&mut self) -> Option<Adapter> {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.set_adapter(None, i);
        }
        self.adapter.take()
    }

    /// The attached adapter.
    pub fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    /// Switches the adapter's branches on or off (off = the reference model).
    pub fn set_adapter_enabled(&mut self, enabled: bool) {
        self.adapter_enabled = enabled;
    }

    /// Whether forward passes add the adapter.
    pub fn adapter_enabled(&self) -> bool {
        self.adapter_enabled && self.adapter.is_some()
    }

    /// Training mode turns LoRA dropout on with a generator seeded by `seed`; `None` turns it off.
    /// On a GPU the masks come from the device's generator, which is seeded here too.
    ///
    /// # Errors
    /// The device refused the seed.
    pub fn set_training(&mut self, seed: Option<u64>) -> Result<()> {
        self.dropout_rng = seed.map(|s| Arc::new(Mutex::new(StdRng::seed_from_u64(s))));
        if let (Some(s), false) = (seed, self.device().is_cpu()) {
            self.device().set_seed(s)?;
        }
        Ok(())
    }

    /// The options of a forward pass in the current mode.
    pub fn ctx(&self) -> ForwardCtx<'_> {
        ForwardCtx {
            adapter: self.adapter_enabled(),
            dropout_rng: self.dropout_rng.as_deref(),
            left_pads: None,
            packing: None,
            detached: false,
        }
    }

    /// A copy with the adapter merged into the frozen weights and no adapter attached: same
    /// outputs as the adapter-on model (up to rounding), faster.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn merged(&self) -> Result<Self> {
        let mut layers = self.layers.clone();
        for (i, l) in layers.iter_mut().enumerate() {
            if self.adapter_enabled() {
                *l = l.merged()?;
            } else {
                l.set_adapter(None, i);
            }
        }
        Ok(Self {
            layers,
            adapter: None,
            adapter_enabled: true,
            dropout_rng: None,
            ..self.clone()
        })
    }

    /// Embeds `ids` `(batch, seq)` (u32) -> `(batch, seq, hidden)`.
    ///
    /// # Errors
    /// [`Error::ModelInput`] for an id outside the vocabulary; tensor errors.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let max = flat.max(0)?.to_dtype(DType::U32)?.to_scalar::<u32>()? as usize;
        if max >= self.cfg.vocab_size {
            return Err(Error::ModelInput {
                message: format!(
                    "token id {max} is outside the vocabulary of {}",
                    self.cfg.vocab_size
                ),
            });
        }
        Ok(self
            .embed_tokens
            .index_select(&flat, 0)?
            .reshape((b, s, self.cfg.hidden_size))?)
    }

    /// Final hidden states `(batch, seq, hidden)` (after the final norm) for `ids`
    /// `(batch, seq)` at positions `cache.len()..`; appends to `cache` when given.
    ///
    /// # Errors
    /// Bad ids, shape or position past `max_position_embeddings`.
    pub fn hidden_states(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.hidden_states_with(ids, cache, &self.ctx())
    }

    /// [`Self::hidden_states`] with explicit forward options (adapter on/off, dropout).
    ///
    /// # Errors
    /// As [`Self::hidden_states`].
    pub fn hidden_states_with(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        ctx: &ForwardCtx,
    ) -> Result<Tensor> {
        let (_, s) = ids.dims2()?;
        let offset = cache.as_ref().map_or(0, |c| c.len());
        if offset + s > self.cfg.max_position_embeddings {
            return Err(Error::ModelInput {
                message: format!(
                    "sequence of {} positions exceeds max_position_embeddings {}",
                    offset + s,
                    self.cfg.max_position_embeddings
                ),
            });
        }
        let mut x = self.embed(ids)?;
        let checkpoint = self.memory.checkpoint_layers
            && cache.is_none()
            && ctx.left_pads.is_none()
            && ctx.adapter
            && !ctx.detached;
        for (i, layer) in self.layers.iter().enumerate() {
            x = if checkpoint {
                let vars = self.layer_vars(i);
                checkpointed_forward(layer, &x, &self.rope, ctx, vars, &self.checkpoint_grads)?
            } else {
                let slot = cache.as_deref_mut().and_then(|c| c.layer_mut(i));
                layer.forward(&x, &self.rope, offset, slot, ctx)?
            };
        }
        self.norm.forward(&x)
    }

    /// The LoRA vars of layer `index` (none without an adapter).
    fn layer_vars(&self, index: usize) -> Vec<candle_core::Var> {
        self.adapter
            .iter()
            .flat_map(|a| a.pairs())
            .filter(|p| p.layer == index)
            .flat_map(|p| [p.a.clone(), p.b.clone()])
            .collect()
    }

    /// Output head: `hidden` `(..., hidden)` -> logits `(..., vocab)`.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        frozen_matmul(hidden, &self.lm_head)
    }

    /// `log p(target)` per row from final hidden states `(n, hidden)` and `targets` `(n,)`:
    /// the head and log-softmax by chunks of [`MemoryOptions::head_chunk`] rows, f32 (f64 for
    /// an f64 model), differentiable to `hidden`.
    ///
    /// # Errors
    /// Shape mismatch, a target outside the vocabulary.
    pub fn target_logprobs(&self, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
        head_log_softmax_chunked(hidden, &self.lm_head, targets, self.memory.head_chunk)
    }

    /// Logits of every position, `(batch, seq, vocab)`.
    ///
    /// # Errors
    /// As [`Self::hidden_states`].
    pub fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        self.head(&self.hidden_states(ids, None)?)
    }

    /// Logits of the last position, `(batch, vocab)`, advancing `cache` (incremental decoding).
    ///
    /// # Errors
    /// As [`Self::hidden_states`].
    pub fn last_logits(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let h = self.hidden_states(ids, cache)?;
        let s = h.dim(1)?;
        self.head(&h.narrow(1, s - 1, 1)?.squeeze(1)?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device, Tensor, Var};
    use candle_nn::VarBuilder;

    use super::*;
    use crate::config::Architecture;
    use crate::layers::lora::{Adapter, LoraConfig};
    use crate::logprobs::{sequence_logprobs, MaskedSequence, SequenceBatch};
    use crate::testing::{max_diff, random_weights, tiny_config};

    fn build(cfg: &ModelConfig, w: &HashMap<String, Tensor>, dtype: DType) -> Decoder {
        let vb = VarBuilder::from_tensors(w.clone(), dtype, &Device::Cpu);
        Decoder::load(vb, cfg).unwrap()
    }

    fn ids() -> Tensor {
        Tensor::new(
            &[[1u32, 5, 9, 3, 30, 7, 2], [4, 4, 17, 8, 0, 21, 11]],
            &Device::Cpu,
        )
        .unwrap()
    }

    #[test]
    fn last_logits_match_candle_transformers_llama() {
        for tied in [false, true] {
            let mut cfg = tiny_config();
            cfg.tie_word_embeddings = tied;
            let w = random_weights(&cfg, 1, DType::F32);
            let ours = build(&cfg, &w, DType::F32)
                .last_logits(&ids(), None)
                .unwrap();
            use candle_transformers::models::llama as ct;
            let ct_cfg = ct::Config {
                hidden_size: cfg.hidden_size,
                intermediate_size: cfg.intermediate_size,
                vocab_size: cfg.vocab_size,
                num_hidden_layers: cfg.num_hidden_layers,
                num_attention_heads: cfg.num_attention_heads,
                num_key_value_heads: cfg.num_key_value_heads,
                use_flash_attn: false,
                rms_norm_eps: cfg.rms_norm_eps,
                rope_theta: cfg.rope_theta as f32,
                bos_token_id: None,
                eos_token_id: None,
                rope_scaling: None,
                max_position_embeddings: cfg.max_position_embeddings,
                tie_word_embeddings: tied,
            };
            let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
            let reference = ct::Llama::load(vb, &ct_cfg).unwrap();
            let mut cache = ct::Cache::new(false, DType::F32, &ct_cfg, &Device::Cpu).unwrap();
            let theirs = reference.forward(&ids(), 0, &mut cache).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let d = max_diff(&ours, &theirs);
            assert!(d < 1e-4, "tied={tied}: max |diff| {d}");
        }
    }

    #[test]
    fn last_logits_match_candle_transformers_qwen2() {
        let mut cfg = tiny_config();
        cfg.architecture = Architecture::Qwen2;
        cfg.qkv_bias = true;
        cfg.rope_theta = 1_000_000.0;
        let w = random_weights(&cfg, 2, DType::F32);
        let ours = build(&cfg, &w, DType::F32)
            .last_logits(&ids(), None)
            .unwrap();
        use candle_transformers::models::qwen2 as ct;
        let ct_cfg = ct::Config {
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            intermediate_size: cfg.intermediate_size,
            num_hidden_layers: cfg.num_hidden_layers,
            num_attention_heads: cfg.num_attention_heads,
            num_key_value_heads: cfg.num_key_value_heads,
            max_position_embeddings: cfg.max_position_embeddings,
            sliding_window: cfg.max_position_embeddings,
            max_window_layers: 0,
            tie_word_embeddings: false,
            rope_theta: cfg.rope_theta,
            rms_norm_eps: cfg.rms_norm_eps,
            use_sliding_window: false,
            hidden_act: candle_nn::Activation::Silu,
        };
        let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
        let mut reference = ct::ModelForCausalLM::new(&ct_cfg, vb).unwrap();
        let theirs = reference.forward(&ids(), 0).unwrap().squeeze(1).unwrap();
        let d = max_diff(&ours, &theirs);
        assert!(d < 1e-4, "max |diff| {d}");
    }

    fn with_adapter(cfg: &ModelConfig, dtype: DType, seed: u64) -> Decoder {
        let w = random_weights(cfg, 3, dtype);
        let mut m = build(cfg, &w, dtype);
        let lc = LoraConfig::new(
            2,
            4.0,
            0.0,
            &[
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
        )
        .unwrap();
        let ad = Adapter::new(&lc, cfg, seed, dtype, &Device::Cpu).unwrap();
        // Non-zero B, so that every LoRA path changes the output.
        for p in ad.pairs() {
            let b = Tensor::randn(0f64, 0.3, p.b.shape(), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            p.b.set(&b).unwrap();
        }
        m.attach_adapter(ad).unwrap();
        m
    }

    #[test]
    fn fresh_adapter_leaves_the_model_unchanged() {
        // PEFT init (B = 0): policy == reference before the first step.
        let cfg = tiny_config();
        let w = random_weights(&cfg, 3, DType::F32);
        let mut m = build(&cfg, &w, DType::F32);
        let base = m.logits(&ids()).unwrap();
        let lc = LoraConfig::new(4, 8.0, 0.0, &["q_proj", "v_proj", "down_proj"]).unwrap();
        m.attach_adapter(Adapter::new(&lc, &cfg, 1, DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(max_diff(&m.logits(&ids()).unwrap(), &base), 0.0);
    }

    #[test]
    fn merged_adapter_equals_adapter_on_and_disabled_equals_base() {
        let cfg = tiny_config();
        let mut m = with_adapter(&cfg, DType::F32, 5);
        let on = m.logits(&ids()).unwrap();
        let merged = m.merged().unwrap().logits(&ids()).unwrap();
        assert!(max_diff(&on, &merged) < 1e-4);
        m.set_adapter_enabled(false);
        let off = m.logits(&ids()).unwrap();
        let base = build(&cfg, &random_weights(&cfg, 3, DType::F32), DType::F32)
            .logits(&ids())
            .unwrap();
        assert_eq!(max_diff(&off, &base), 0.0);
        assert!(
            max_diff(&on, &off) > 1e-2,
            "the adapter must change the output"
        );
        assert_eq!(
            max_diff(&m.merged().unwrap().logits(&ids()).unwrap(), &base),
            0.0
        );
    }

    #[test]
    fn kv_cache_decoding_equals_full_forward() {
        let cfg = tiny_config();
        let m = with_adapter(&cfg, DType::F32, 6);
        let full = m.logits(&ids()).unwrap();
        let mut cache = KvCache::new(cfg.num_hidden_layers);
        let first = m
            .last_logits(&ids().narrow(1, 0, 4).unwrap(), Some(&mut cache))
            .unwrap();
        assert!(max_diff(&first, &full.narrow(1, 3, 1).unwrap().squeeze(1).unwrap()) < 1e-5);
        for t in 4..7 {
            let step = m
                .last_logits(&ids().narrow(1, t, 1).unwrap(), Some(&mut cache))
                .unwrap();
            let expect = full.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
            assert!(max_diff(&step, &expect) < 1e-5, "position {t}");
        }
        assert_eq!(cache.len(), 7);
    }

    #[test]
    fn lora_gradients_match_finite_differences() {
        let mut cfg = tiny_config();
        cfg.qkv_bias = true;
        let m = with_adapter(&cfg, DType::F64, 7);
        let seqs = vec![
            MaskedSequence {
                ids: vec![1, 5, 9, 3, 30, 7],
                answer_mask: vec![false, false, false, true, true, true],
            },
            MaskedSequence {
                ids: vec![4, 17, 8, 21],
                answer_mask: vec![false, true, true, true],
            },
        ];
        let batch = SequenceBatch::new(&seqs, 0, &Device::Cpu).unwrap();
        let weights = Tensor::new(&[0.7f64, -1.3], &Device::Cpu).unwrap();
        let loss = |m: &Decoder| -> Tensor {
            let lp = sequence_logprobs(m, &batch).unwrap();
            (lp.logp * &weights).unwrap().sum_all().unwrap()
        };
        let grads = loss(&m).backward().unwrap();
        let vars: Vec<Var> = m.adapter().unwrap().vars();
        let h = 1e-5;
        let mut checked = 0;
        for (vi, v) in vars.iter().enumerate() {
            let g = grads
                .get(v)
                .unwrap_or_else(|| panic!("no gradient for var {vi}"));
            let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
            let orig: Vec<f64> = v.flatten_all().unwrap().to_vec1().unwrap();
            // Two coordinates per var: first and a middle one.
            for &i in &[0, orig.len() / 2 + 1] {
                let probe = |delta: f64| {
                    let mut x = orig.clone();
                    x[i] += delta;
                    v.set(&Tensor::from_vec(x, v.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    let f = loss(&m).to_scalar::<f64>().unwrap();
                    v.set(&Tensor::from_vec(orig.clone(), v.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    f
                };
                let fd = (probe(h) - probe(-h)) / (2.0 * h);
                let tol = 1e-6 * (1.0 + fd.abs());
                assert!(
                    (fd - g[i]).abs() < tol,
                    "var {vi} coord {i}: fd {fd} autograd {}",
                    g[i]
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 2 * vars.len());
        // No gradient reaches the frozen weights: they are not vars.
        assert!(grads.get(m.lm_head()).is_none());
    }

    #[test]
    fn sequence_logprobs_sum_answer_tokens_of_padded_rows() {
        let cfg = tiny_config();
        let m = with_adapter(&cfg, DType::F32, 8);
        let a = MaskedSequence {
            ids: vec![1, 5, 9, 3],
            answer_mask: vec![false, false, true, true],
        };
        let b = MaskedSequence {
            ids: vec![1, 7, 9, 3, 12, 13, 2],
            answer_mask: vec![false, false, false, true, true, true, true],
        };
        let batch = SequenceBatch::new(&[a.clone(), b.clone()], 0, &Device::Cpu).unwrap();
        let lp = sequence_logprobs(&m, &batch).unwrap();
        assert_eq!(lp.n_tokens, vec![2, 4]);
        let got: Vec<f32> = lp.logp.to_vec1().unwrap();
        for (row, s) in [a, b].iter().enumerate() {
            let per_token = crate::logprobs::token_logprobs(&m, &s.ids).unwrap();
            let expect: f32 = (1..s.ids.len())
                .filter(|&t| s.answer_mask[t])
                .map(|t| per_token[t - 1])
                .sum();
            assert!(
                (got[row] - expect).abs() < 1e-4,
                "row {row}: {} vs {expect}",
                got[row]
            );
        }
    }
}

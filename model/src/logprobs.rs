//! Sequence log-probabilities: for each sequence of a right-padded batch, the sum over answer
//! tokens `t` of `log p(x_t | x_<t)` (nats) and the number of answer tokens.
//!
//! Fed by tokenized, prompt-masked sequences ([`MaskedSequence`], built by the chat template
//! code); feeds the preference losses (`logp_policy` with autograd to the LoRA vars, `logp_ref`
//! without). The head and log-softmax run only at the positions that predict answer tokens, in
//! f32 (f64 models stay f64), so prompt positions cost no vocabulary-sized work.

use candle_core::{DType, IndexOp, Tensor, D};

use crate::kernels::cpu::attention::HiddenKeys;
use crate::layers::context::{ForwardCtx, Packing};
use crate::layers::decoder::Decoder;
use crate::{Error, Result};

/// One tokenized sequence: `answer_mask[t]` marks tokens whose log-prob counts (`t >= 1`;
/// position 0 has no prediction and is ignored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MaskedSequence {
    /// Token ids, prompt then answer.
    pub ids: Vec<u32>,
    /// Same length as `ids`; true on answer tokens.
    pub answer_mask: Vec<bool>,
}

/// A right-padded batch ready for the decoder.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    ids: Tensor,
    /// Flat index (`row * seq + t - 1`) of the position predicting each answer token.
    predict_at: Vec<u32>,
    /// The answer token ids, aligned with `predict_at`.
    targets: Vec<u32>,
    /// The sequence (output row) of each answer token.
    rows: Vec<usize>,
    n_tokens: Vec<usize>,
    /// Shared-prefix layout; `None` for one sequence per row.
    packing: Option<Packing>,
}

/// Where each answer token is predicted: the flat hidden-state index, its target id, and the
/// sequence it counts for, with the answer tokens per sequence.
#[derive(Default)]
struct Predictions {
    predict_at: Vec<u32>,
    targets: Vec<u32>,
    rows: Vec<usize>,
    n_tokens: Vec<usize>,
}

impl Predictions {
    fn new(sequences: usize) -> Self {
        Self {
            n_tokens: vec![0; sequences],
            ..Self::default()
        }
    }

    /// Records answer tokens of `s` as sequence `k`; the token after position `t` of `s` is
    /// predicted at flat index `at(t)`.
    fn add(&mut self, k: usize, s: &MaskedSequence, at: impl Fn(usize) -> usize) {
        for t in 1..s.ids.len() {
            if s.answer_mask[t] {
                self.predict_at.push(at(t - 1) as u32);
                self.targets.push(s.ids[t]);
                self.rows.push(k);
                self.n_tokens[k] += 1;
            }
        }
    }
}

/// Checks that a sequence has ids and a mask of the same, non-zero length.
fn check_sequence(r: usize, s: &MaskedSequence) -> Result<()> {
    if s.ids.is_empty() || s.ids.len() != s.answer_mask.len() {
        return Err(Error::ModelInput {
            message: format!(
                "sequence {r} has {} ids and {} mask entries; expected equal and non-zero",
                s.ids.len(),
                s.answer_mask.len()
            ),
        });
    }
    Ok(())
}

/// The ids two sequences share before either's first answer token: their common prompt.
fn shared_prompt_len(a: &MaskedSequence, b: &MaskedSequence) -> usize {
    let answer_start =
        |s: &MaskedSequence| s.answer_mask.iter().position(|&m| m).unwrap_or(s.ids.len());
    let limit = answer_start(a).min(answer_start(b));
    a.ids
        .iter()
        .zip(&b.ids)
        .take(limit)
        .take_while(|(x, y)| x == y)
        .count()
}

impl SequenceBatch {
    /// Pads `sequences` on the right with `pad_id` to the longest one.
    ///
    /// # Errors
    /// [`Error::ModelInput`] for an empty batch, an empty sequence or a mask of another length.
    pub fn new(
        sequences: &[MaskedSequence],
        pad_id: u32,
        device: &candle_core::Device,
    ) -> Result<Self> {
        if sequences.is_empty() {
            return Err(Error::ModelInput {
                message: "empty batch of sequences".into(),
            });
        }
        let seq = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(seq * sequences.len());
        let mut predictions = Predictions::new(sequences.len());
        for (r, s) in sequences.iter().enumerate() {
            check_sequence(r, s)?;
            ids.extend_from_slice(&s.ids);
            ids.extend(std::iter::repeat_n(pad_id, seq - s.ids.len()));
            predictions.add(r, s, |t| r * seq + t);
        }
        let ids = Tensor::from_vec(ids, (sequences.len(), seq), device)?;
        Ok(Self::from_parts(ids, predictions, None))
    }

    /// Packs each pair `(a, b)` into one row: their shared prompt once, then `a`'s rest, then
    /// `b`'s rest at the positions where `a`'s began, with `b` blind to `a` ([`Packing`]). The
    /// log-probs come out per sequence, `a` then `b` of each pair, as [`Self::new`] gives them
    /// for `[a0, b0, a1, b1, ...]`, for the work of one prompt per pair: a DPO pair's two
    /// answers share their prompt's forward and backward pass.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn shared_prefix(
        pairs: &[(&MaskedSequence, &MaskedSequence)],
        pad_id: u32,
        device: &candle_core::Device,
    ) -> Result<Self> {
        if pairs.is_empty() {
            return Err(Error::ModelInput {
                message: "empty batch of sequence pairs".into(),
            });
        }
        let shared: Vec<usize> = pairs.iter().map(|(a, b)| shared_prompt_len(a, b)).collect();
        let seq = pairs
            .iter()
            .zip(&shared)
            .map(|((a, b), &p)| a.ids.len() + b.ids.len() - p)
            .max()
            .unwrap_or(0);
        let mut ids = Vec::with_capacity(seq * pairs.len());
        let mut positions = Vec::with_capacity(seq * pairs.len());
        let mut hidden = Vec::with_capacity(pairs.len());
        let mut predictions = Predictions::new(2 * pairs.len());
        for (r, ((a, b), &p)) in pairs.iter().zip(&shared).enumerate() {
            check_sequence(2 * r, a)?;
            check_sequence(2 * r + 1, b)?;
            let (la, lb) = (a.ids.len(), b.ids.len());
            ids.extend_from_slice(&a.ids);
            ids.extend_from_slice(&b.ids[p..]);
            ids.extend(std::iter::repeat_n(pad_id, seq - (la + lb - p)));
            positions.extend((0..la).chain(p..lb).map(|t| t as u32));
            positions.extend(std::iter::repeat_n(0, seq - (la + lb - p)));
            hidden.push(HiddenKeys {
                query_from: la,
                key_from: p,
                key_to: la,
            });
            predictions.add(2 * r, a, |t| r * seq + t);
            // `b`'s token t sits in the shared prompt, or after all of `a`.
            predictions.add(2 * r + 1, b, |t| {
                r * seq + if t < p { t } else { la + t - p }
            });
        }
        let ids = Tensor::from_vec(ids, (pairs.len(), seq), device)?;
        Ok(Self::from_parts(
            ids,
            predictions,
            Some(Packing { positions, hidden }),
        ))
    }

    fn from_parts(ids: Tensor, predictions: Predictions, packing: Option<Packing>) -> Self {
        let Predictions {
            predict_at,
            targets,
            rows,
            n_tokens,
        } = predictions;
        Self {
            ids,
            predict_at,
            targets,
            rows,
            n_tokens,
            packing,
        }
    }

    /// The padded ids `(batch, seq)`.
    pub fn ids(&self) -> &Tensor {
        &self.ids
    }

    /// Answer tokens per sequence.
    pub fn n_tokens(&self) -> &[usize] {
        &self.n_tokens
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.n_tokens.len()
    }

    /// True for a batch of no sequences (never built by [`Self::new`]).
    pub fn is_empty(&self) -> bool {
        self.n_tokens.is_empty()
    }
}

/// Per-sequence summed answer log-probs.
#[derive(Debug, Clone)]
pub struct SequenceLogProbs {
    /// `(batch,)`, nats, f32 (f64 for f64 models); carries autograd to the adapter's vars.
    pub logp: Tensor,
    /// Answer tokens per sequence.
    pub n_tokens: Vec<usize>,
}

pub use crate::kernels::chunked_head::gather_log_softmax;

/// Summed answer log-probs of every sequence under the decoder's current mode (adapter on or
/// off, dropout if training), with autograd to the adapter's vars.
///
/// # Errors
/// Tensor errors or bad ids.
pub fn sequence_logprobs(model: &Decoder, batch: &SequenceBatch) -> Result<SequenceLogProbs> {
    sequence_logprobs_with(model, batch, &model.ctx())
}

/// Summed answer log-probs of the base model (adapter off, no dropout), as plain `f32` values:
/// the reference log-probs.
///
/// # Errors
/// Tensor errors or bad ids.
pub fn reference_logprobs(model: &Decoder, batch: &SequenceBatch) -> Result<Vec<f32>> {
    let out = sequence_logprobs_with(model, batch, &ForwardCtx::BASE)?;
    Ok(out.logp.detach().to_dtype(DType::F32)?.to_vec1()?)
}

/// [`sequence_logprobs`] with explicit forward options.
///
/// # Errors
/// Tensor errors or bad ids.
pub fn sequence_logprobs_with(
    model: &Decoder,
    batch: &SequenceBatch,
    ctx: &ForwardCtx,
) -> Result<SequenceLogProbs> {
    let device = model.device();
    let n = batch.predict_at.len();
    let b = batch.len();
    let ctx = ForwardCtx {
        packing: batch.packing.as_ref(),
        ..*ctx
    };
    let hidden = model.hidden_states_with(batch.ids(), None, &ctx)?;
    let h = hidden.dim(D::Minus1)?;
    if n == 0 {
        let dtype = if hidden.dtype() == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        return Ok(SequenceLogProbs {
            logp: Tensor::zeros(b, dtype, device)?,
            n_tokens: batch.n_tokens.clone(),
        });
    }
    let at = Tensor::from_slice(&batch.predict_at, n, device)?;
    let selected = hidden.reshape(((), h))?.index_select(&at, 0)?;
    let targets = Tensor::from_slice(&batch.targets, n, device)?;
    let token_logp = model.target_logprobs(&selected, &targets)?;
    // (batch, n) 0/1 segment matrix times (n, 1): per-row sums with a plain matmul backward.
    let mut seg = vec![0f32; b * n];
    for (j, &r) in batch.rows.iter().enumerate() {
        seg[r * n + j] = 1.0;
    }
    let seg = Tensor::from_vec(seg, (b, n), device)?.to_dtype(token_logp.dtype())?;
    let logp = seg.matmul(&token_logp.unsqueeze(1)?)?.squeeze(1)?;
    Ok(SequenceLogProbs {
        logp,
        n_tokens: batch.n_tokens.clone(),
    })
}

/// Log-prob of every token after the first under the decoder's current mode (no dropout):
/// `out[i] = log p(ids[i + 1] | ids[..=i])`.
///
/// # Errors
/// [`Error::ModelInput`] for fewer than one id; tensor errors.
pub fn token_logprobs(model: &Decoder, ids: &[u32]) -> Result<Vec<f32>> {
    if ids.is_empty() {
        return Err(Error::ModelInput {
            message: "no token ids".into(),
        });
    }
    if ids.len() == 1 {
        return Ok(vec![]);
    }
    let ctx = ForwardCtx {
        adapter: model.adapter_enabled(),
        dropout_rng: None,
        left_pads: None,
        packing: None,
        detached: false,
    };
    let x = Tensor::from_slice(ids, (1, ids.len()), model.device())?;
    let hidden = model.hidden_states_with(&x, None, &ctx)?.i(0)?;
    let hidden = hidden.narrow(0, 0, ids.len() - 1)?;
    let logits = model.head(&hidden)?;
    let targets = Tensor::from_slice(&ids[1..], ids.len() - 1, model.device())?;
    Ok(gather_log_softmax(&logits, &targets)?
        .detach()
        .to_dtype(DType::F32)?
        .to_vec1()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::smollm2;

    #[test]
    fn smollm2_logprobs_match_numpy_reference() {
        // Written by tests/reference/llama_numpy.py (independent numpy forward over the same
        // dequantized GGUF weights, raw llama.cpp q/k layout with interleaved RoPE).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/reference/smollm2_logprobs.json"
        );
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let ids: Vec<u32> = serde_json::from_value(fixture["token_ids"].clone()).unwrap();
        let expect: Vec<f64> = serde_json::from_value(fixture["logprobs"].clone()).unwrap();
        let text = fixture["text"].as_str().unwrap();
        let (model, tok) = smollm2();
        assert_eq!(
            tok.encode(text).unwrap(),
            ids,
            "tokenizer drifted from the fixture"
        );
        let got = token_logprobs(model, &ids).unwrap();
        assert_eq!(got.len(), expect.len());
        for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
            assert!(
                (*g as f64 - e).abs() < 1e-3,
                "token {i}: ours {g}, numpy {e}"
            );
        }
        // The batched, masked path agrees with the per-token one.
        let mask: Vec<bool> = (0..ids.len()).map(|i| i >= 16).collect();
        let seq = MaskedSequence {
            ids: ids.clone(),
            answer_mask: mask,
        };
        let short = MaskedSequence {
            ids: ids[..10].to_vec(),
            answer_mask: vec![true; 10],
        };
        let batch = SequenceBatch::new(&[seq, short], 2, model.device()).unwrap();
        let lp = reference_logprobs(model, &batch).unwrap();
        let want0: f64 = expect[15..].iter().sum();
        let want1: f64 = expect[..9].iter().sum();
        assert!((lp[0] as f64 - want0).abs() < 2e-3, "{} vs {want0}", lp[0]);
        assert!((lp[1] as f64 - want1).abs() < 2e-3, "{} vs {want1}", lp[1]);
        assert_eq!(batch.n_tokens(), &[ids.len() - 16, 9]);
    }

    /// A tiny random model with a LoRA adapter whose B is non-zero (so it matters).
    fn tiny_with_adapter() -> Decoder {
        use crate::testing::{random_weights, tiny_config};
        use crate::{Adapter, LoraConfig};
        let cfg = tiny_config();
        let vb = candle_nn::VarBuilder::from_tensors(
            random_weights(&cfg, 11, DType::F32),
            DType::F32,
            &candle_core::Device::Cpu,
        );
        let mut model = Decoder::load(vb, &cfg).unwrap();
        let lora = LoraConfig::new(4, 8.0, 0.0, &["q_proj", "v_proj"]).unwrap();
        let adapter = Adapter::new(&lora, &cfg, 2, DType::F32, &candle_core::Device::Cpu).unwrap();
        for p in adapter.pairs() {
            let b = Tensor::randn(0f32, 0.3, p.b.shape(), &candle_core::Device::Cpu).unwrap();
            p.b.set(&b).unwrap();
        }
        model.attach_adapter(adapter).unwrap();
        model
    }

    fn masked(prompt: &[u32], answer: &[u32], trailer: &[u32]) -> MaskedSequence {
        let ids: Vec<u32> = [prompt, answer, trailer].concat();
        let answer_mask = (0..ids.len())
            .map(|t| t >= prompt.len() && t < prompt.len() + answer.len())
            .collect();
        MaskedSequence { ids, answer_mask }
    }

    #[test]
    fn shared_prefix_batches_give_the_plain_log_probs_and_gradients() {
        let model = tiny_with_adapter();
        let dev = model.device().clone();
        // Answers of other lengths than their partners', a trailing unmasked token, a pair
        // whose answers share their first token (not part of the prompt), and prompts of
        // several lengths (padding).
        let sequences = [
            masked(&[1, 5, 9, 3, 7], &[11, 12, 13], &[2]),
            masked(&[1, 5, 9, 3, 7], &[20, 21], &[2]),
            masked(&[4, 6], &[30, 31, 17, 18, 19], &[]),
            masked(&[4, 6], &[30, 25], &[]),
        ];
        let plain = SequenceBatch::new(&sequences, 0, &dev).unwrap();
        let pairs = [
            (&sequences[0], &sequences[1]),
            (&sequences[2], &sequences[3]),
        ];
        let packed = SequenceBatch::shared_prefix(&pairs, 0, &dev).unwrap();
        assert_eq!(packed.n_tokens(), plain.n_tokens());
        // Rows of 5 + 4 + 3 and 2 + 5 + 2 tokens, against four of up to 9.
        assert_eq!(packed.ids().dims(), &[2, 12]);
        let weights = Tensor::new(&[0.7f32, -1.3, 0.4, 2.0], &dev).unwrap();
        let run = |batch: &SequenceBatch| {
            let logp = sequence_logprobs(&model, batch).unwrap().logp;
            let grads = (&logp * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let vars = model.adapter().unwrap().vars();
            let grads: Vec<Tensor> = vars.iter().map(|v| grads.get(v).unwrap().clone()).collect();
            (logp, grads)
        };
        let (logp_plain, grads_plain) = run(&plain);
        let (logp_packed, grads_packed) = run(&packed);
        let logp_plain: Vec<f32> = logp_plain.to_vec1().unwrap();
        let logp_packed: Vec<f32> = logp_packed.to_vec1().unwrap();
        for (a, b) in logp_plain.iter().zip(&logp_packed) {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                "{logp_plain:?} vs {logp_packed:?}"
            );
        }
        for (g_plain, g_packed) in grads_plain.iter().zip(&grads_packed) {
            let scale = g_plain
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let diff = crate::testing::max_diff(g_plain, g_packed);
            assert!(
                diff <= 1e-4 * f64::from(scale).max(1e-6),
                "{diff} vs {scale}"
            );
        }
    }
}

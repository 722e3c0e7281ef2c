//! Sequence log-probabilities: for each sequence of a right-padded batch, the sum over answer
//! tokens `t` of `log p(x_t | x_<t)` (nats) and the number of answer tokens.
//!
//! Fed by tokenized, prompt-masked sequences ([`MaskedSequence`], built by the chat template
//! code); feeds the preference losses (`logp_policy` with autograd to the LoRA vars, `logp_ref`
//! without). The head and log-softmax run only at the positions that predict answer tokens, in
//! f32 (f64 models stay f64), so prompt positions cost no vocabulary-sized work.

use candle_core::{DType, IndexOp, Tensor, D};

use crate::layers::context::ForwardCtx;
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
    /// The row of each answer token.
    rows: Vec<usize>,
    n_tokens: Vec<usize>,
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
        let (mut predict_at, mut targets, mut rows) = (vec![], vec![], vec![]);
        let mut n_tokens = vec![0; sequences.len()];
        for (r, s) in sequences.iter().enumerate() {
            if s.ids.is_empty() || s.ids.len() != s.answer_mask.len() {
                return Err(Error::ModelInput {
                    message: format!(
                        "sequence {r} has {} ids and {} mask entries; expected equal and non-zero",
                        s.ids.len(),
                        s.answer_mask.len()
                    ),
                });
            }
            ids.extend_from_slice(&s.ids);
            ids.extend(std::iter::repeat_n(pad_id, seq - s.ids.len()));
            for t in 1..s.ids.len() {
                if s.answer_mask[t] {
                    predict_at.push((r * seq + t - 1) as u32);
                    targets.push(s.ids[t]);
                    rows.push(r);
                    n_tokens[r] += 1;
                }
            }
        }
        let ids = Tensor::from_vec(ids, (sequences.len(), seq), device)?;
        Ok(Self {
            ids,
            predict_at,
            targets,
            rows,
            n_tokens,
        })
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

/// `log_softmax(logits)[target]` per row: `logits` `(n, vocab)`, `targets` `(n,)` u32 ->
/// `(n,)`. Upcasts half precision to f32.
///
/// # Errors
/// Shape mismatch.
pub fn gather_log_softmax(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = match logits.dtype() {
        DType::F64 | DType::F32 => logits.clone(),
        _ => logits.to_dtype(DType::F32)?,
    };
    crate::kernels::cpu::log_softmax::gather_log_softmax_fused(&logits, targets)
}

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
    let hidden = model.hidden_states_with(batch.ids(), None, ctx)?;
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
    let logits = model.head(&selected)?;
    let targets = Tensor::from_slice(&batch.targets, n, device)?;
    let token_logp = gather_log_softmax(&logits, &targets)?;
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
}

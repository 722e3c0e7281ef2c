//! Held-out preference pairs and their log-ratios, for the `preference-accuracy` scorer.
//!
//! Each pair of the run's eval split is tokenized exactly as training tokenizes (chat template,
//! TRL's truncation); its log-ratios are `lr = log π(y|x) − log π_ref(y|x)` in nats, summed over
//! answer tokens, with π the model with the adapter merged and π_ref the base model.
//! Single-answer examples (KTO data) have no pair and are skipped and counted.

use crate::{
    data::tokenize,
    data::{DataConfig, Dataset, Role},
    Result,
};
use fedpref_model::{
    reference_logprobs, ChatTemplate, Decoder, MaskedSequence, SequenceBatch, TextTokenizer,
};

/// One held-out pair in tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldOutPair {
    /// The record's 0-based index in its data file.
    pub id: String,
    /// The last user message of the prompt.
    pub prompt: String,
    /// Prompt + chosen answer.
    pub chosen: MaskedSequence,
    /// Prompt + rejected answer.
    pub rejected: MaskedSequence,
}

/// The pairs of `dataset`, and how many examples were skipped (single answers, or dropped as
/// overlong by `data.overlong = "drop"`).
///
/// # Errors
/// Template and tokenizer errors naming the example.
pub fn held_out_pairs(
    dataset: &Dataset,
    tokenizer: &TextTokenizer,
    template: &ChatTemplate,
    config: &DataConfig,
) -> Result<(Vec<HeldOutPair>, usize)> {
    let tokenized = tokenize(dataset, tokenizer, template, config)?;
    let mut pairs = Vec::new();
    let mut skipped = 0;
    for (example, tokens) in dataset.examples.iter().zip(&tokenized.examples) {
        match tokens {
            Some(t) if t.desirable.is_none() && t.answers.len() == 2 => pairs.push(HeldOutPair {
                id: example.location.record.to_string(),
                prompt: example
                    .prompt
                    .iter()
                    .rev()
                    .find(|m| m.role == Role::User)
                    .map(|m| m.content.clone())
                    .unwrap_or_default(),
                chosen: t.sequence(0),
                rejected: t.sequence(1),
            }),
            _ => skipped += 1,
        }
    }
    Ok((pairs, skipped))
}

/// `(log π(chosen), log π(rejected))` of every pair under `decoder` (summed answer log-probs,
/// nats), with the adapter branch off: pass the merged model for the policy, the base model for
/// the reference.
///
/// # Errors
/// Tensor errors.
pub fn pair_logprobs(
    decoder: &Decoder,
    pairs: &[HeldOutPair],
    batch_size: usize,
    pad_id: u32,
) -> Result<Vec<(f64, f64)>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch_size.max(1)) {
        let sequences: Vec<MaskedSequence> = chunk
            .iter()
            .flat_map(|p| [p.chosen.clone(), p.rejected.clone()])
            .collect();
        let batch = SequenceBatch::new(&sequences, pad_id, decoder.device())?;
        let logp = reference_logprobs(decoder, &batch)?;
        out.extend(
            logp.chunks_exact(2)
                .map(|c| (f64::from(c[0]), f64::from(c[1]))),
        );
    }
    Ok(out)
}

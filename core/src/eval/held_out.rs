//! Held-out preference data and its log-ratios, for the `preference-accuracy` scorer.
//!
//! Each example — of the run's eval split, or of a benchmark's own data file (`format =
//! "preference"`) — is tokenized exactly as training tokenizes (chat template, TRL's
//! truncation); its log-ratios are `lr = log π(y|x) − log π_ref(y|x)` in nats, summed over
//! answer tokens, with π the model with the adapter merged and π_ref the base model. A pair
//! gives two (chosen, rejected); a single labelled answer (KTO data) gives one and its label.

use crate::{
    data::tokenize,
    data::{DataConfig, Dataset, Role},
    Result,
};
use fedpref_model::{
    reference_logprobs, ChatTemplate, Decoder, MaskedSequence, SequenceBatch, TextTokenizer,
};

/// The answers of one held-out example, in tokens (prompt included, answer masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldOutAnswers {
    /// A (chosen, rejected) pair.
    Pair {
        /// Prompt + chosen answer.
        chosen: MaskedSequence,
        /// Prompt + rejected answer.
        rejected: MaskedSequence,
    },
    /// One answer labelled desirable or undesirable.
    Single {
        /// Prompt + answer.
        answer: MaskedSequence,
        /// Its label.
        desirable: bool,
    },
}

/// One held-out example in tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldOutItem {
    /// The record's 0-based index in its data file.
    pub id: String,
    /// The last user message of the prompt.
    pub prompt: String,
    /// Its answers.
    pub answers: HeldOutAnswers,
}

impl HeldOutItem {
    /// The sequences to score, in order: chosen then rejected, or the one answer.
    pub fn sequences(&self) -> Vec<&MaskedSequence> {
        match &self.answers {
            HeldOutAnswers::Pair { chosen, rejected } => vec![chosen, rejected],
            HeldOutAnswers::Single { answer, .. } => vec![answer],
        }
    }
}

/// The held-out items of `dataset`, and how many examples were dropped as overlong
/// (`data.overlong = "drop"`).
///
/// # Errors
/// Template and tokenizer errors naming the example.
pub fn held_out_items(
    dataset: &Dataset,
    tokenizer: &TextTokenizer,
    template: &ChatTemplate,
    config: &DataConfig,
) -> Result<(Vec<HeldOutItem>, usize)> {
    let tokenized = tokenize(dataset, tokenizer, template, config)?;
    let mut items = Vec::new();
    let mut dropped = 0;
    for (example, tokens) in dataset.examples.iter().zip(&tokenized.examples) {
        let Some(t) = tokens else {
            dropped += 1;
            continue;
        };
        let answers = match t.desirable {
            Some(desirable) => HeldOutAnswers::Single {
                answer: t.sequence(0),
                desirable,
            },
            None => HeldOutAnswers::Pair {
                chosen: t.sequence(0),
                rejected: t.sequence(1),
            },
        };
        items.push(HeldOutItem {
            id: example.location.record.to_string(),
            prompt: example
                .prompt
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.clone())
                .unwrap_or_default(),
            answers,
        });
    }
    Ok((items, dropped))
}

/// The summed answer log-probs (nats) of every item's [`HeldOutItem::sequences`] under
/// `decoder`, one list per item, with the adapter branch off: pass the merged model for the
/// policy, the base model for the reference. A batch holds `2 · batch_size` sequences, as many
/// as `batch_size` pairs.
///
/// # Errors
/// Tensor errors.
pub fn item_logprobs(
    decoder: &Decoder,
    items: &[HeldOutItem],
    batch_size: usize,
    pad_id: u32,
) -> Result<Vec<Vec<f64>>> {
    let sequences: Vec<MaskedSequence> = items
        .iter()
        .flat_map(HeldOutItem::sequences)
        .cloned()
        .collect();
    let mut flat = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks(2 * batch_size.max(1)) {
        let batch = SequenceBatch::new(chunk, pad_id, decoder.device())?;
        flat.extend(
            reference_logprobs(decoder, &batch)?
                .into_iter()
                .map(f64::from),
        );
    }
    Ok(per_item(items, &flat))
}

/// Splits `flat` (the log-probs of every item's sequences, in order) back into one list per
/// item.
pub fn per_item(items: &[HeldOutItem], flat: &[f64]) -> Vec<Vec<f64>> {
    let mut rest = flat;
    items
        .iter()
        .map(|item| {
            let (mine, tail) = rest.split_at(item.sequences().len().min(rest.len()));
            rest = tail;
            mine.to_vec()
        })
        .collect()
}

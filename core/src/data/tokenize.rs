//! Token ids of every training answer: the example's prompt rendered with the model's chat
//! template (generation prompt on), each answer tokenized after it with EOS appended, both fitted
//! to the length limits the way TRL does (prompt first, keeping its end; then answers).
//!
//! Fed by the data set and the model's tokenizer and template; feeds batching and the
//! reference log-prob cache.

use crate::{
    data::{fit_lengths, Answers, DataConfig, Dataset, Fit, LengthCounts, LengthLimits, Message},
    Error, Result,
};
use fedpref_model::{
    logprobs::MaskedSequence, text::answer_mask::split_chat, ChatMessage, ChatTemplate,
    TextTokenizer,
};

/// One example in tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    /// Prompt ids (template applied, generation prompt included).
    pub prompt: Vec<u32>,
    /// Answer ids (EOS included): `[chosen, rejected]` for a pair, `[completion]` otherwise.
    pub answers: Vec<Vec<u32>>,
    /// The label of a single-answer example (true: desirable); `None` for a pair.
    pub desirable: Option<bool>,
}

impl TokenizedExample {
    /// Prompt followed by `answer`, masked so only the answer's tokens count.
    pub fn sequence(&self, answer: usize) -> MaskedSequence {
        self.sequence_with(answer, self)
    }

    /// This example's prompt followed by answer `answer` of `other`: a KL-batch sequence.
    pub fn sequence_with(&self, answer: usize, other: &TokenizedExample) -> MaskedSequence {
        let answer = &other.answers[answer];
        let mut ids = Vec::with_capacity(self.prompt.len() + answer.len());
        ids.extend_from_slice(&self.prompt);
        ids.extend_from_slice(answer);
        let answer_mask = (0..ids.len()).map(|i| i >= self.prompt.len()).collect();
        MaskedSequence { ids, answer_mask }
    }

    /// Number of tokens of the prompt and its longest answer.
    pub fn max_len(&self) -> usize {
        self.prompt.len() + self.answers.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// The tokenized training set: `examples[i]` is `None` when example `i` was dropped as
/// overlong (`data.overlong = "drop"`).
#[derive(Debug, Clone)]
pub struct TokenizedDataset {
    /// One entry per data-set example.
    pub examples: Vec<Option<TokenizedExample>>,
    /// How many fitted as they were, were truncated, were dropped.
    pub lengths: LengthCounts,
}

fn chat(messages: &[Message]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|m| ChatMessage::new(m.role.as_str(), m.content.clone()))
        .collect()
}

/// An answer given as a message list is the text of its assistant messages.
fn answer_text(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tokenizes every example of `dataset`.
///
/// # Errors
/// Template and tokenizer errors, naming the example's location.
pub fn tokenize(
    dataset: &Dataset,
    tokenizer: &TextTokenizer,
    template: &ChatTemplate,
    config: &DataConfig,
) -> Result<TokenizedDataset> {
    let (_, eos) = tokenizer.eos().ok_or_else(|| {
        Error::from(fedpref_model::Error::input(
            "the tokenizer has no eos token to end answers",
        ))
    })?;
    let limits = LengthLimits {
        max_length: config.max_length,
        max_prompt_length: config.max_prompt_length,
    };
    let mut lengths = LengthCounts::default();
    let mut examples = Vec::with_capacity(dataset.examples.len());
    for example in &dataset.examples {
        let (answers, desirable): (Vec<&[Message]>, _) = match &example.answers {
            Answers::Pair { chosen, rejected } => (vec![chosen, rejected], None),
            Answers::Single {
                completion,
                desirable,
            } => (vec![completion], Some(*desirable)),
        };
        let prompt_messages = chat(&example.prompt);
        let mut prompt_text = None;
        let mut answer_ids = Vec::with_capacity(answers.len());
        for answer in &answers {
            let (prompt, text) = split_chat(template, &prompt_messages, &answer_text(answer))
                .map_err(|e| {
                    Error::Usage(format!(
                        "{}: {}: {e}",
                        dataset.path.display(),
                        example.location
                    ))
                })?;
            prompt_text.get_or_insert(prompt);
            let mut ids = tokenizer.encode(&text)?;
            ids.push(eos);
            answer_ids.push(ids);
        }
        let prompt_ids = tokenizer.encode(prompt_text.as_deref().unwrap_or_default())?;
        let answer_slices: Vec<&[u32]> = answer_ids.iter().map(Vec::as_slice).collect();
        let fit = fit_lengths(&prompt_ids, &answer_slices, limits, config.overlong);
        lengths.record(&fit);
        examples.push(match fit {
            Fit::Kept(f) | Fit::Truncated(f) => Some(TokenizedExample {
                prompt: f.prompt.to_vec(),
                answers: f.answers.iter().map(|a| a.to_vec()).collect(),
                desirable,
            }),
            Fit::Dropped => None,
        });
    }
    Ok(TokenizedDataset { examples, lengths })
}

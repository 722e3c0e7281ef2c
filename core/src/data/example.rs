//! One validated example: a prompt and either a (chosen, rejected) pair or a single labelled
//! answer, with its optional group and category and where it came from.
//!
//! Built by [`super::record`] from one record of any layout; read by the views
//! ([`super::views`]), the partition metadata ([`super::meta`]) and, later, tokenization.

use fedpref_plugin_api::ExampleKind;

use super::{
    message::{n_chars, Message},
    Location,
};

/// The answer part of an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answers {
    /// A preference pair. Each answer is a message list, usually one assistant message.
    Pair {
        /// The preferred answer.
        chosen: Vec<Message>,
        /// The dispreferred answer.
        rejected: Vec<Message>,
    },
    /// A single answer with a binary label (KTO data).
    Single {
        /// The answer.
        completion: Vec<Message>,
        /// `true`: desirable; `false`: undesirable.
        desirable: bool,
    },
}

/// One example of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The conversation before the answer, system message first when there is one; rendered
    /// later by the model's chat template.
    pub prompt: Vec<Message>,
    /// The pair or the single answer.
    pub answers: Answers,
    /// The user or client id (`natural` split), when the data has one.
    pub group: Option<String>,
    /// The value of the configured category column (`dirichlet` split), when set.
    pub category: Option<String>,
    /// The record held plain strings rather than messages (TRL's standard, non-conversational
    /// format, which TRL feeds to the tokenizer without a chat template).
    pub plain_text: bool,
    /// Where the record is in its file.
    pub location: Location,
}

impl Example {
    /// Pair, desirable or undesirable.
    pub fn kind(&self) -> ExampleKind {
        match self.answers {
            Answers::Pair { .. } => ExampleKind::Pair,
            Answers::Single {
                desirable: true, ..
            } => ExampleKind::Desirable,
            Answers::Single {
                desirable: false, ..
            } => ExampleKind::Undesirable,
        }
    }

    /// Whether the example is a pair.
    pub fn is_pair(&self) -> bool {
        matches!(self.answers, Answers::Pair { .. })
    }

    /// Characters of the prompt.
    pub fn prompt_chars(&self) -> usize {
        n_chars(&self.prompt)
    }

    /// Characters of the prompt plus every answer: the length measure until tokenization.
    pub fn n_chars(&self) -> usize {
        let answers = match &self.answers {
            Answers::Pair { chosen, rejected } => n_chars(chosen) + n_chars(rejected),
            Answers::Single { completion, .. } => n_chars(completion),
        };
        self.prompt_chars() + answers
    }
}

//! Chat messages: the unit every layout is read into.
//!
//! Prompts (and answers) stay message lists so that the model's chat template, not the loader,
//! decides how a conversation becomes text. Role names of both families are accepted:
//! OpenAI/TRL (`system`, `user`, `assistant`) and ShareGPT (`system`, `human`, `gpt`).

use serde::{Deserialize, Serialize};

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions before the conversation.
    System,
    /// The human side (`user`, ShareGPT `human`).
    User,
    /// The model side (`assistant`, ShareGPT `gpt`).
    Assistant,
}

impl Role {
    /// The role names accepted in data files, for error messages.
    pub const ACCEPTED: &'static str = "system, user, human, assistant, gpt";

    /// The canonical lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Reads a role name of either family; `None` for anything else (tool or function roles).
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "system" => Some(Role::System),
            "user" | "human" => Some(Role::User),
            "assistant" | "gpt" => Some(Role::Assistant),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said, as written in the file.
    pub content: String,
}

impl Message {
    /// A message from `role` saying `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// The number of characters (Unicode scalar values) of all contents, the length measure used
/// until the model's tokenizer is available.
pub fn n_chars(messages: &[Message]) -> usize {
    messages.iter().map(|m| m.content.chars().count()).sum()
}

/// Whether every content is empty or whitespace.
pub fn is_blank(messages: &[Message]) -> bool {
    messages.iter().all(|m| m.content.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_role_families_parse() {
        assert_eq!(Role::parse("human"), Some(Role::User));
        assert_eq!(Role::parse("gpt"), Some(Role::Assistant));
        assert_eq!(Role::parse("assistant"), Some(Role::Assistant));
        assert_eq!(Role::parse("function_call"), None);
        assert_eq!(
            n_chars(&[Message::user("héllo"), Message::assistant("ok")]),
            7
        );
        assert!(is_blank(&[Message::assistant(" \n")]));
    }
}

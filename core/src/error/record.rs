//! What can be wrong with one record, and where: the validation vocabulary of the loader.
//!
//! The reader and the layout parsers of [`crate::data`] report a [`Problem`] per bad record; the
//! loader either stops with the first ones ([`super::Error::InvalidData`]) or skips them and
//! counts them by [`Reason`] in [`InvalidCounts`], which the run manifest records.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

/// How the records of a file are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// One JSON array of records.
    Json,
    /// One JSON object per line (JSON Lines).
    Jsonl,
}

impl FileKind {
    /// `json` or `jsonl`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Json => "json",
            FileKind::Jsonl => "jsonl",
        }
    }
}

/// Where a record sits in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Array or JSON Lines file.
    pub kind: FileKind,
    /// 0-based index of the record among the file's records (blank lines not counted).
    pub record: usize,
    /// 1-based line where the record (or the problem inside it) starts.
    pub line: usize,
}

impl fmt::Display for Location {
    /// `line 12` for JSON Lines, `record 3 (line 40)` for arrays.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FileKind::Jsonl => write!(f, "line {}", self.line),
            FileKind::Json => write!(f, "record {} (line {})", self.record, self.line),
        }
    }
}

/// The category of a problem, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// Not valid JSON.
    Syntax,
    /// The file ends inside the record.
    Truncated,
    /// A JSON value that is not an object.
    NotAnObject,
    /// A required field is absent.
    MissingField,
    /// A field of the wrong JSON type.
    WrongType,
    /// A prompt with no text.
    EmptyPrompt,
    /// An answer with no text.
    EmptyAnswer,
    /// Chosen and rejected are the same.
    IdenticalAnswers,
    /// A label that is not `true` or `false`.
    LabelNotBool,
    /// A message role outside the known ones.
    UnknownRole,
    /// A conversation whose turns do not fit the layout (e.g. does not end with the answer).
    BadTurns,
}

impl Reason {
    /// A short lowercase name, as used in tables and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid-utf8",
            Reason::Syntax => "syntax",
            Reason::Truncated => "truncated",
            Reason::NotAnObject => "not-an-object",
            Reason::MissingField => "missing-field",
            Reason::WrongType => "wrong-type",
            Reason::EmptyPrompt => "empty-prompt",
            Reason::EmptyAnswer => "empty-answer",
            Reason::IdenticalAnswers => "identical-answers",
            Reason::LabelNotBool => "label-not-bool",
            Reason::UnknownRole => "unknown-role",
            Reason::BadTurns => "bad-turns",
        }
    }
}

/// What is wrong with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Bytes that are not UTF-8, `offset` bytes into the record.
    InvalidUtf8 {
        /// Byte offset of the first bad byte from the start of the record.
        offset: usize,
    },
    /// Not valid JSON; serde_json's message.
    Syntax(String),
    /// The file ends inside the record.
    Truncated,
    /// The record is a JSON value other than an object.
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// A required field is absent.
    MissingField {
        /// The field, as a path (`chosen`, `conversations[2].from`).
        field: String,
    },
    /// A field of the wrong type.
    WrongType {
        /// The field, as a path.
        field: String,
        /// What the layout needs.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A prompt with no text.
    EmptyPrompt {
        /// The field.
        field: String,
    },
    /// An answer with no text.
    EmptyAnswer {
        /// The field.
        field: String,
    },
    /// Chosen and rejected are identical.
    IdenticalAnswers,
    /// A label that is not a JSON boolean.
    LabelNotBool {
        /// The field.
        field: String,
        /// The value found, shortened.
        found: String,
    },
    /// A role name outside the accepted ones.
    UnknownRole {
        /// The field.
        field: String,
        /// The role found.
        role: String,
        /// The role names accepted, comma separated.
        accepted: &'static str,
    },
    /// Turns that do not fit the layout.
    BadTurns {
        /// The field.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl Problem {
    /// The category, for counting.
    pub fn reason(&self) -> Reason {
        match self {
            Problem::InvalidUtf8 { .. } => Reason::InvalidUtf8,
            Problem::Syntax(_) => Reason::Syntax,
            Problem::Truncated => Reason::Truncated,
            Problem::NotAnObject { .. } => Reason::NotAnObject,
            Problem::MissingField { .. } => Reason::MissingField,
            Problem::WrongType { .. } => Reason::WrongType,
            Problem::EmptyPrompt { .. } => Reason::EmptyPrompt,
            Problem::EmptyAnswer { .. } => Reason::EmptyAnswer,
            Problem::IdenticalAnswers => Reason::IdenticalAnswers,
            Problem::LabelNotBool { .. } => Reason::LabelNotBool,
            Problem::UnknownRole { .. } => Reason::UnknownRole,
            Problem::BadTurns { .. } => Reason::BadTurns,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::InvalidUtf8 { offset } => {
                write!(
                    f,
                    "invalid UTF-8 at byte {offset} of the record; re-encode the file as UTF-8"
                )
            }
            Problem::Syntax(message) => write!(f, "invalid JSON: {message}"),
            Problem::Truncated => write!(f, "the file ends inside this record (truncated file?)"),
            Problem::NotAnObject { found } => write!(f, "expected a JSON object, got {found}"),
            Problem::MissingField { field } => write!(f, "missing field `{field}`"),
            Problem::WrongType {
                field,
                expected,
                found,
            } => {
                write!(f, "`{field}` must be {expected}, got {found}")
            }
            Problem::EmptyPrompt { field } => write!(f, "`{field}` is empty"),
            Problem::EmptyAnswer { field } => write!(f, "`{field}` is empty"),
            Problem::IdenticalAnswers => write!(f, "chosen and rejected are identical"),
            Problem::LabelNotBool { field, found } => {
                write!(f, "`{field}` must be true or false, got {found}")
            }
            Problem::UnknownRole {
                field,
                role,
                accepted,
            } => write!(
                f,
                "`{field}` has unknown role {role:?} (accepted: {accepted})"
            ),
            Problem::BadTurns { field, message } => write!(f, "`{field}`: {message}"),
        }
    }
}

/// A problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The record.
    pub location: Location,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.problem)
    }
}

/// Skipped records counted by reason (`on_invalid = "skip"`), for the run manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InvalidCounts(pub BTreeMap<Reason, usize>);

impl InvalidCounts {
    /// Counts one more record skipped for `reason`.
    pub fn add(&mut self, reason: Reason) {
        *self.0.entry(reason).or_default() += 1;
    }

    /// Records skipped in all.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// Records skipped for `reason`.
    pub fn get(&self, reason: Reason) -> usize {
        self.0.get(&reason).copied().unwrap_or(0)
    }
}

/// The JSON type name of `value`, for messages.
pub fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The issues as an indented list, one per line (for error messages).
pub fn format_issues(issues: &[Issue]) -> String {
    issues.iter().map(|i| format!("\n  {i}")).collect()
}

//! The model's error type. Variants carry what a user needs to act: the file, the tensor or
//! key, the bad value and the expected one.

use std::path::PathBuf;

/// Everything that can go wrong in the model crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    // The cause is part of the message rather than a `#[source]`, so `{:#}` does not print it
    // twice.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },

    /// A malformed JSON document.
    #[error("{}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's message with line and column.
        message: String,
    },

    /// A failed tensor operation (shape mismatch, unsupported op, device error).
    #[error("tensor op failed: {0}")]
    Tensor(#[from] candle_core::Error),

    /// A model file or directory that is malformed or lacks a key, tensor or file.
    #[error("{}: {message}", path.display())]
    ModelFormat {
        /// The model file or directory.
        path: PathBuf,
        /// What is missing or wrong, naming the key or tensor.
        message: String,
    },

    /// A model architecture the decoder does not implement.
    #[error("{}: unsupported model architecture {arch:?}; supported: llama, qwen2", path.display())]
    UnsupportedArchitecture {
        /// The model file or directory.
        path: PathBuf,
        /// The architecture the file declares.
        arch: String,
    },

    /// A tokenizer that cannot be built or fails to encode or decode.
    #[error("tokenizer: {message}")]
    Tokenizer {
        /// What failed.
        message: String,
    },

    /// A chat template that does not parse or render.
    #[error("chat template: {message}")]
    ChatTemplate {
        /// minijinja's message, or what is wrong with the rendered prompt.
        message: String,
    },

    /// A LoRA adapter that does not fit the model or is malformed on disk.
    #[error("{}: {message}", path.display())]
    Adapter {
        /// The adapter directory (or `-` when in memory).
        path: PathBuf,
        /// What does not fit, naming the tensor or key.
        message: String,
    },

    /// Invalid input to a model function (empty batch, token id out of range, ...).
    #[error("invalid model input: {message}")]
    ModelInput {
        /// What was wrong: the bad value and the expected one.
        message: String,
    },

    /// A device, dtype or shape name that does not exist, or a device this build cannot open
    /// (a usage error: exit code 2 in the CLI).
    #[error("{0}")]
    Usage(String),
}

/// `Result` with the model's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }

    /// [`Error::ModelInput`] with `message`.
    pub fn input(message: impl Into<String>) -> Self {
        Error::ModelInput {
            message: message.into(),
        }
    }
}

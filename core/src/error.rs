//! The one error type of the `fedpref` library. Variants carry the context a user needs to act:
//! the file, the plugin, the key.

use std::path::PathBuf;

use fedpref_plugin_api::{ComponentKind, PluginError};

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A shared library that exports no fedpref root module.
    #[error("{}: not a fedpref plugin ({reason})", path.display())]
    NotAPlugin {
        /// The library.
        path: PathBuf,
        /// Why: no root-module symbol, or not a loadable library at all.
        reason: String,
    },

    /// A plugin built against an incompatible `fedpref-plugin-api`.
    #[error("{}: built against an incompatible plugin API ({summary}); rebuild it against fedpref-plugin-api {host_api}", path.display())]
    IncompatiblePlugin {
        /// The library.
        path: PathBuf,
        /// abi_stable's finding, summarized to one line.
        summary: String,
        /// The API version the host was built with.
        host_api: &'static str,
    },

    /// A plugin whose manifest function failed.
    #[error("{}: reading the plugin manifest failed: {source}", path.display())]
    PluginManifest {
        /// The library.
        path: PathBuf,
        /// The plugin's error.
        source: PluginError,
    },

    /// Two plugins provide a component of the same kind and name.
    #[error("{kind} {name:?} is provided twice: by {} and by {}", first.display(), second.display())]
    DuplicateComponent {
        /// Component kind.
        kind: ComponentKind,
        /// Component name.
        name: String,
        /// The library loaded first.
        first: PathBuf,
        /// The library loaded second.
        second: PathBuf,
    },

    /// A component name that no loaded plugin provides.
    #[error("no {kind} named {name:?}{suggestion}; available: {available}")]
    UnknownComponent {
        /// Component kind.
        kind: ComponentKind,
        /// The requested name.
        name: String,
        /// `"; did you mean ..."` or empty.
        suggestion: String,
        /// The names that exist, comma separated (or "none").
        available: String,
    },

    /// A plugin call returned an error (including a caught panic).
    #[error("{kind} {name:?} ({}): {source}", path.display())]
    Plugin {
        /// Component kind.
        kind: ComponentKind,
        /// Component name.
        name: String,
        /// The plugin library.
        path: PathBuf,
        /// The plugin's error.
        source: PluginError,
    },

    /// A plugin returned output that breaks the ABI contract (wrong length, NaN).
    #[error("{kind} {name:?} ({}) returned invalid output: {message}", path.display())]
    PluginContract {
        /// Component kind.
        kind: ComponentKind,
        /// Component name.
        name: String,
        /// The plugin library.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },

    /// A malformed JSON document.
    #[error("{}: {message}", path.display())]
    Json {
        /// The file (or `-` for standard input).
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
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

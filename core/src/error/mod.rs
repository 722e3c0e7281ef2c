//! The one error type of the `fedpref` library. Variants carry the context a user needs to act:
//! the file, the plugin, the key.

use std::path::PathBuf;

pub mod record;

use fedpref_plugin_api::{ComponentKind, PluginError};

use record::{format_issues, Issue};

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    // The cause is part of the message rather than a `#[source]`, so `{:#}` does not print it
    // twice; the same holds for the plugin errors below.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
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
    #[error("{}: reading the plugin manifest failed: {cause}", path.display())]
    PluginManifest {
        /// The library.
        path: PathBuf,
        /// The plugin's error.
        cause: PluginError,
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
    #[error("{kind} {name:?} ({}): {cause}", path.display())]
    Plugin {
        /// Component kind.
        kind: ComponentKind,
        /// Component name.
        name: String,
        /// The plugin library.
        path: PathBuf,
        /// The plugin's error.
        cause: PluginError,
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

    /// A config file with a bad key or value.
    #[error("{}: {message}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The key, the bad value and what is allowed.
        message: String,
    },

    /// A mistake in how a command or experiment is put together (exit code 2).
    #[error("{0}")]
    Usage(String),

    /// A checkpoint that cannot be read back.
    #[error("{}: damaged checkpoint: {message}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A run that cannot continue (NaN weights, no usable client, interrupted).
    #[error("{}: {message}", run_dir.display())]
    Run {
        /// The run directory.
        run_dir: PathBuf,
        /// What happened and what to do.
        message: String,
    },

    /// A run that failed in a process of its own ([`crate::federation::isolation`]), as that
    /// process reported it.
    #[error("{message}")]
    InChild {
        /// The run directory.
        run_dir: PathBuf,
        /// The error as the run's process printed it, or how that process ended.
        message: String,
        /// Whether the error is the user's to fix (a config or data error).
        usage: bool,
    },

    /// A loss came out NaN or infinite: the client's training diverged (its update is
    /// rejected for the round, the run goes on).
    #[error("{what}")]
    NonFinite {
        /// Which value, from which component.
        what: String,
    },

    /// The user interrupted a run (Ctrl-C); its last complete round is checkpointed.
    #[error("{}: interrupted during round {round}; rounds before it are checkpointed, run the same command again to continue", run_dir.display())]
    Interrupted {
        /// The run directory.
        run_dir: PathBuf,
        /// The round that was abandoned.
        round: u32,
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

    /// A file of the run directory that cannot be read or written.
    #[error(transparent)]
    RunDir(#[from] fedpref_rundir::Error),

    /// A model, tokenizer, chat template or adapter error, or a device this build cannot open.
    #[error(transparent)]
    Model(#[from] fedpref_model::Error),

    /// Records of a data file that failed validation while `data.on_invalid = "error"`.
    #[error(
        "{}: {count} invalid record{} (first {} shown):{}\nfix them, or set data.on_invalid = \"skip\" to skip and count them",
        path.display(), if *count == 1 { "" } else { "s" }, first.len(), format_issues(first)
    )]
    InvalidData {
        /// The data file.
        path: PathBuf,
        /// How many records are invalid.
        count: usize,
        /// The first of them, each with its line or record index.
        first: Vec<Issue>,
    },

    /// A data file whose records cannot be located (an array with broken structure).
    #[error("{}:{line}: {message}; the file cannot be split into records", path.display())]
    UnreadableData {
        /// The data file.
        path: PathBuf,
        /// 1-based line of the damage.
        line: usize,
        /// What was found and what was expected.
        message: String,
    },

    /// A data file whose record layout is unknown or ambiguous.
    #[error("{}: {message}", path.display())]
    DataLayout {
        /// The data file.
        path: PathBuf,
        /// The fields found and the layouts known.
        message: String,
    },

    /// A data file without a single valid example.
    #[error("{}: no valid examples ({records} records read, {skipped} skipped as invalid)", path.display())]
    EmptyDataset {
        /// The data file.
        path: PathBuf,
        /// Records read.
        records: usize,
        /// Records skipped as invalid.
        skipped: usize,
    },

    /// A loss that needs (chosen, rejected) pairs on data holding single answers.
    #[error(
        "loss {loss:?} needs (chosen, rejected) pairs, but {} {detail}; single answers cannot be made into pairs: use a loss for unpaired data (e.g. kto) or a paired data set",
        path.display()
    )]
    NeedsPairs {
        /// The data file.
        path: PathBuf,
        /// The loss asking for pairs.
        loss: String,
        /// What the file holds instead.
        detail: String,
    },

    /// An invalid `[data]` setting.
    #[error("data.{key}: {message}")]
    DataConfig {
        /// The key under `[data]`.
        key: &'static str,
        /// The bad value and what is expected.
        message: String,
    },

    /// A partition that does not place every example (or single answer) exactly once.
    #[error("partitioner {partitioner:?} returned an invalid partition: {message}")]
    InvalidPartition {
        /// The partitioner's name.
        partitioner: String,
        /// The first fault found.
        message: String,
    },
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the user fixes this in arguments, configuration or data (exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            Error::UnknownComponent { .. }
            | Error::Json { .. }
            | Error::Config { .. }
            | Error::Usage(_)
            | Error::InvalidData { .. }
            | Error::DataLayout { .. }
            | Error::EmptyDataset { .. }
            | Error::NeedsPairs { .. }
            | Error::DataConfig { .. }
            | Error::Model(fedpref_model::Error::Usage(_)) => true,
            Error::Plugin { cause, .. } => {
                cause.kind == fedpref_plugin_api::ErrorKind::InvalidParams
            }
            Error::InChild { usage, .. } => *usage,
            _ => false,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}

//! Errors of reading and writing a run directory: each names its file.

use std::path::PathBuf;

/// A failure on a file of the run directory.
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

    /// Another process holds the run directory.
    #[error("{}: another fedpref process is using this run directory ({holder}); wait for it to finish, or stop it, then run again", path.display())]
    Busy {
        /// The run directory.
        path: PathBuf,
        /// What the lock file says of its holder.
        holder: String,
    },

    /// A JSON document that does not parse or cannot be written.
    #[error("{}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's message with line and column.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}

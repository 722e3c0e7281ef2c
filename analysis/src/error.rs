//! The crate's error type: every variant names the path it concerns and, where it helps, what
//! to do about it.

use std::path::PathBuf;

use crate::read::Problem;

/// What can go wrong reading runs and writing reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The path holds no run directory.
    #[error(
        "{}: no run directory found (a run has config.toml, manifest.json or metrics/); \
         pass a run or sweep directory written by `fedpref run`",
        path.display()
    )]
    NoRuns {
        /// The directory given.
        path: PathBuf,
    },
    /// Strict reading found missing or corrupt files.
    #[error(
        "{} problem(s) reading {} (run without --strict to skip them with a warning):\n  {}",
        problems.len(),
        path.display(),
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    Strict {
        /// The run or sweep directory.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// polars refused to build or write a frame.
    #[error("{what}: {source}")]
    Frame {
        /// Which frame or file.
        what: String,
        /// The cause.
        #[source]
        source: polars::error::PolarsError,
    },
    /// A figure could not be drawn.
    #[error("drawing {}: {message}", path.display())]
    Figure {
        /// The figure file.
        path: PathBuf,
        /// What the drawing backend said.
        message: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Frame`] saying what was being built or written.
    pub fn frame(what: impl Into<String>, source: polars::error::PolarsError) -> Self {
        Error::Frame {
            what: what.into(),
            source,
        }
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

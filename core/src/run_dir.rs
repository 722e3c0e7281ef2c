//! The run directory: what a run writes, where, and how a resumed run finds its place.
//!
//! Layout version 1 (analysis reads only what is listed here):
//!
//! ```text
//! <output_dir>/<experiment>/             the sweep directory
//!   cache/reference-logprobs.bin         reference log-probs shared by the sweep's runs
//!   <method>-<aggregator>-s<seed>/       one run
//!     config.toml                        the resolved config of this run
//!     manifest.json                      versions, plugins (file, version), seed, data counts,
//!                                        partition summary, status, rounds completed
//!     metrics/steps.jsonl                one JSON object per local optimizer step
//!     metrics/rounds.jsonl               one JSON object per round
//!     metrics/evals.jsonl                one JSON object per benchmark and evaluation
//!     eval/<benchmark>.jsonl             one JSON object per scored item (fields: eval::records)
//!     eval/cache/answers.jsonl           generated answers by (model, adapter, prompt, settings)
//!     checkpoints/round-NNNN/            adapter_model.safetensors, adapter_config.json,
//!                                        aggregator.bin, clients.bin, state.json
//!     checkpoints/latest                 the name of the newest complete checkpoint
//! ```
//!
//! Metrics files are append-only; each checkpoint records their byte lengths, and resuming
//! truncates them back to those lengths, so rows of an unfinished round never appear twice.
//! A checkpoint is written to `round-NNNN.tmp`, synced, then renamed, and `latest` is replaced
//! the same way, so a kill at any moment leaves the previous checkpoint intact.

use std::{
    fs::{self, File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The version of the layout above; bumped on any incompatible change.
pub const LAYOUT_VERSION: u32 = 1;

/// Paths inside one run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (not created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the directory tree.
    ///
    /// # Errors
    /// [`Error::Io`] naming the directory.
    pub fn create(&self) -> Result<()> {
        for dir in [
            self.root.clone(),
            self.metrics_dir(),
            self.eval_dir(),
            self.checkpoints_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(())
    }

    /// The run directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `manifest.json`.
    pub fn manifest_file(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    /// `metrics/`.
    pub fn metrics_dir(&self) -> PathBuf {
        self.root.join("metrics")
    }

    /// `metrics/steps.jsonl`.
    pub fn steps_file(&self) -> PathBuf {
        self.metrics_dir().join("steps.jsonl")
    }

    /// `metrics/rounds.jsonl`.
    pub fn rounds_file(&self) -> PathBuf {
        self.metrics_dir().join("rounds.jsonl")
    }

    /// `eval/`.
    pub fn eval_dir(&self) -> PathBuf {
        self.root.join("eval")
    }

    /// `checkpoints/`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// `checkpoints/round-NNNN` for the state after `round` (0-based) completed.
    pub fn checkpoint_dir(&self, round: u32) -> PathBuf {
        self.checkpoints_dir().join(format!("round-{round:04}"))
    }

    /// The newest complete checkpoint, if any.
    ///
    /// # Errors
    /// [`Error::Io`] when `latest` exists but cannot be read.
    pub fn latest_checkpoint(&self) -> Result<Option<PathBuf>> {
        let latest = self.checkpoints_dir().join("latest");
        match fs::read_to_string(&latest) {
            Ok(name) => {
                let dir = self.checkpoints_dir().join(name.trim());
                Ok(dir.is_dir().then_some(dir))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(latest, e)),
        }
    }

    /// Writes a checkpoint atomically: `fill` writes the files into a temporary directory,
    /// which is synced and renamed to `round-NNNN`; then `latest` is pointed at it.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file; any error of `fill`.
    pub fn write_checkpoint(
        &self,
        round: u32,
        fill: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let final_dir = self.checkpoint_dir(round);
        let tmp = final_dir.with_extension("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        fill(&tmp)?;
        for entry in fs::read_dir(&tmp).map_err(|e| Error::io(&tmp, e))? {
            let path = entry.map_err(|e| Error::io(&tmp, e))?.path();
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
        if final_dir.exists() {
            // A previous attempt at this round got as far as the rename but not `latest`.
            fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
        }
        fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        let name = final_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        write_atomic(&self.checkpoints_dir().join("latest"), name.as_bytes())?;
        sync_dir(&self.checkpoints_dir())?;
        Ok(final_dir)
    }

    /// Deletes checkpoints older than `keep_from` (the newest is always kept).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn prune_checkpoints(&self, keep_from: u32) -> Result<()> {
        let dir = self.checkpoints_dir();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            let round = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("round-"))
                .and_then(|n| n.parse::<u32>().ok());
            if round.is_some_and(|r| r < keep_from) {
                fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-write");
    let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// An append-only JSON-lines file.
pub struct JsonLines {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl JsonLines {
    /// Opens `path` for appending, first truncating it to `length` bytes (the length recorded
    /// by the checkpoint being resumed; `None` keeps everything).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn open(path: &Path, length: Option<u64>) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        if let Some(length) = length {
            file.set_len(length).map_err(|e| Error::io(path, e))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
        })
    }

    /// Appends one row.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn append(&mut self, row: &impl Serialize) -> Result<()> {
        let line = serde_json::to_string(row).map_err(|e| Error::Json {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        writeln!(self.writer, "{line}").map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes and syncs, returning the file's length (for the checkpoint).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn sync(&mut self) -> Result<u64> {
        self.writer.flush().map_err(|e| Error::io(&self.path, e))?;
        let file = self.writer.get_ref();
        file.sync_data().map_err(|e| Error::io(&self.path, e))?;
        Ok(file.metadata().map_err(|e| Error::io(&self.path, e))?.len())
    }
}

/// Where a run stands, stored in `manifest.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started, not finished (or killed).
    Running,
    /// Every round and the final evaluation are done.
    Complete,
    /// Stopped by an error; the message is in the manifest.
    Failed,
}

//! Paths inside one run directory, and its checkpoints: written atomically, found again on
//! resume, pruned to the newest few.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
};

use crate::files::{sync_dir, write_atomic};
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

    /// Takes the run directory for this process: an advisory lock on `<run>/.lock`, held
    /// until the [`RunLock`] is dropped (or the process ends, however it ends), so two
    /// processes never write one run at once. Creates the directory.
    ///
    /// # Errors
    /// [`Error::Busy`] when another process holds it; [`Error::Io`].
    pub fn lock(&self) -> Result<RunLock> {
        fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let path = self.root.join(".lock");
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                return Err(Error::Busy {
                    path: self.root.clone(),
                    holder: if holder.trim().is_empty() {
                        "holder unknown".to_owned()
                    } else {
                        holder.trim().to_owned()
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        use std::io::Write;
        file.set_len(0)
            .and_then(|()| write!(file, "pid {}", std::process::id()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(RunLock { _file: file })
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
    pub fn write_checkpoint<E: From<Error>>(
        &self,
        round: u32,
        fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<PathBuf, E> {
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

    /// The rounds of the complete checkpoints present, ascending (none when the folder is
    /// missing).
    ///
    /// # Errors
    /// [`Error::Io`] when the folder exists but cannot be listed.
    pub fn checkpoint_rounds(&self) -> Result<Vec<u32>> {
        let dir = self.checkpoints_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut rounds = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            rounds.extend(checkpoint_round(&path).filter(|_| path.is_dir()));
        }
        rounds.sort_unstable();
        Ok(rounds)
    }

    /// Deletes checkpoints older than `keep_from` (the newest is always kept).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn prune_checkpoints(&self, keep_from: u32) -> Result<()> {
        for round in self.checkpoint_rounds()? {
            if round < keep_from {
                let path = self.checkpoint_dir(round);
                fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// A run directory held by this process ([`RunDir::lock`]); released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// The round of a checkpoint directory named `round-NNNN`; `None` for any other name
/// (`latest`, a `round-NNNN.tmp` left by a kill).
pub fn checkpoint_round(path: &Path) -> Option<u32> {
    path.file_name()?
        .to_str()?
        .strip_prefix("round-")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_is_held_by_one_lock_at_a_time() {
        let root = tempfile::tempdir().unwrap();
        let dir = RunDir::new(root.path().join("run"));
        let held = dir.lock().unwrap();
        let err = dir.lock().unwrap_err().to_string();
        assert!(
            err.contains("another fedpref process")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        dir.lock().expect("free again once dropped");
    }

    #[test]
    fn checkpoint_names_parse_back_to_their_round() {
        let dir = RunDir::new("runs/x/dpo-fedavg-s0");
        assert_eq!(checkpoint_round(&dir.checkpoint_dir(7)), Some(7));
        assert_eq!(checkpoint_round(&dir.checkpoint_dir(12345)), Some(12345));
        for other in ["latest", "round-0003.tmp", "round-", "rounds-0001"] {
            assert_eq!(checkpoint_round(Path::new(other)), None, "{other}");
        }
    }

    #[test]
    fn a_checkpoint_is_found_again_and_older_ones_pruned() {
        let root = tempfile::tempdir().expect("temporary directory");
        let dir = RunDir::new(root.path().join("run"));
        dir.create().expect("create");
        assert_eq!(dir.latest_checkpoint().expect("read"), None);
        for round in 0..3 {
            dir.write_checkpoint(round, |tmp| write_atomic(&tmp.join("state.json"), b"{}"))
                .expect("write");
        }
        assert_eq!(
            dir.latest_checkpoint().expect("read"),
            Some(dir.checkpoint_dir(2))
        );
        assert_eq!(dir.checkpoint_rounds().expect("list"), [0, 1, 2]);
        dir.prune_checkpoints(2).expect("prune");
        assert_eq!(dir.checkpoint_rounds().expect("list"), [2]);
    }
}

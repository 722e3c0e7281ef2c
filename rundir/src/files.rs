//! Files that survive a kill: [`write_atomic`] (a synced temporary file renamed into place, the
//! folder synced after) and [`JsonLines`] (append-only rows, synced once per round, truncated
//! back to a checkpoint's length on resume).

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::{Error, Result};

/// Writes `bytes` to `path` through a synced temporary file and a rename.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(parent).map_err(|e| Error::io(parent, e))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| Error::io(file.path(), e))?;
    file.persist(path).map_err(|e| Error::io(path, e.error))?;
    // The rename is durable only once the folder's entry is on disk.
    sync_dir(parent)
}

/// Syncs a folder, so renames into it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("state.json");
        write_atomic(&path, b"first").expect("write");
        write_atomic(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn json_lines_truncate_back_to_a_checkpointed_length() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("rows.jsonl");
        let mut rows = JsonLines::open(&path, None).expect("open");
        rows.append(&serde_json::json!({"round": 0}))
            .expect("append");
        let kept = rows.sync().expect("sync");
        rows.append(&serde_json::json!({"round": 1}))
            .expect("append");
        rows.sync().expect("sync");
        drop(rows);
        let mut rows = JsonLines::open(&path, Some(kept)).expect("reopen");
        rows.append(&serde_json::json!({"round": 1, "again": true}))
            .expect("append");
        rows.sync().expect("sync");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"round\":0}\n{\"again\":true,\"round\":1}\n"
        );
    }
}

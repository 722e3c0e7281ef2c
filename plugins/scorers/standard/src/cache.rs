//! An on-disk cache of judge replies, keyed by SHA-256 of (judge model, system prompt, user
//! prompt), so re-scoring the same answers costs no judge call.
//!
//! Layout: `<cache_dir>/<first two hex digits>/<sha256 hex>.json` holding
//! `{"model": ..., "reply": ...}`, written to a temporary file and renamed, so concurrent
//! writers and a killed process never leave a half-written entry. Only replies are cached (a
//! parsed or unparsed verdict), never failures to reach the judge.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped when the key's composition changes, so old entries are never misread.
const KEY_VERSION: &str = "fedpref-judge-cache-v1";

/// A directory of cached judge replies.
#[derive(Debug)]
pub struct VerdictCache {
    dir: PathBuf,
    writes: AtomicU64,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    model: String,
    reply: String,
}

impl VerdictCache {
    /// A cache in `dir`, created if missing.
    ///
    /// # Errors
    /// A message naming the directory when it cannot be created.
    pub fn open(dir: &Path) -> Result<Self, String> {
        fs::create_dir_all(dir)
            .map_err(|e| format!("`cache_dir` {}: cannot create it: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            writes: AtomicU64::new(0),
        })
    }

    /// The key of a judge call: hex SHA-256 over the model and both messages.
    pub fn key(model: &str, system: &str, user: &str) -> String {
        let mut hasher = Sha256::new();
        for part in [KEY_VERSION, model, system, user] {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    /// The cached reply of `key`, if any (an unreadable entry counts as missing).
    pub fn get(&self, key: &str) -> Option<String> {
        let text = fs::read_to_string(self.path(key)).ok()?;
        serde_json::from_str::<Entry>(&text).ok().map(|e| e.reply)
    }

    /// Stores `reply` under `key`.
    ///
    /// # Errors
    /// A message naming the entry's file when it cannot be written.
    pub fn put(&self, key: &str, model: &str, reply: &str) -> Result<(), String> {
        let path = self.path(key);
        let write = || -> std::io::Result<()> {
            let parent = path.parent().unwrap_or(&self.dir);
            fs::create_dir_all(parent)?;
            let n = self.writes.fetch_add(1, Ordering::Relaxed);
            let tmp = parent.join(format!(".{key}.{}.{n}.tmp", std::process::id()));
            let text = serde_json::to_string(&Entry {
                model: model.to_owned(),
                reply: reply.to_owned(),
            })?;
            fs::write(&tmp, text)?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| format!("judge cache entry {}: cannot write it: {e}", path.display()))
    }
}

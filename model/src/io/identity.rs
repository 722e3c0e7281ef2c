//! The identity of a model's files for cache keys: a SHA-256 of their content, so a cache
//! follows the weights, not where they sit. A copy or a move keeps its caches; a file rewritten
//! in place with other weights of the same size and timestamp does not inherit them.
//!
//! A folder (Hugging Face layout) is hashed file by file in name order, each file's name and
//! length before its bytes. The digest is kept per process by (path, length, modification
//! time), so the runs of a sweep hash the model once.

use std::{
    collections::HashMap,
    io::Read,
    path::{Path, PathBuf},
    sync::Mutex,
    time::SystemTime,
};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Digests already computed in this process, by what a change would alter.
type Seen = HashMap<(PathBuf, u64, Option<SystemTime>), String>;

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);

/// `sha256:<hex>` of the model at `path` (a file, or every regular file directly inside a
/// folder).
///
/// # Errors
/// [`Error::Io`] naming a file that cannot be read.
pub fn model_identity(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(known) = SEEN
        .lock()
        .ok()
        .and_then(|seen| seen.as_ref()?.get(&key).cloned())
    {
        return Ok(known);
    }
    let mut hasher = Sha256::new();
    if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hash_file(&file, &mut hasher)?;
        }
    } else {
        hash_file(path, &mut hasher)?;
    }
    let identity = format!("sha256:{:x}", hasher.finalize());
    if let Ok(mut seen) = SEEN.lock() {
        seen.get_or_insert_with(HashMap::new)
            .insert(key, identity.clone());
    }
    Ok(identity)
}

/// Feeds `path`'s length and bytes to `hasher`.
fn hash_file(path: &Path, hasher: &mut Sha256) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    hasher.update(len.to_le_bytes());
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buffer[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::model_identity;

    #[test]
    fn the_identity_follows_the_content_not_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.gguf");
        std::fs::write(&a, b"weights one").unwrap();
        let moved = dir.path().join("elsewhere.gguf");
        std::fs::copy(&a, &moved).unwrap();
        let first = model_identity(&a).unwrap();
        assert!(
            first.starts_with("sha256:") && first.len() == 7 + 64,
            "{first}"
        );
        assert_eq!(model_identity(&moved).unwrap(), first, "a copy keeps it");
        // Other bytes of the same length, as a rewrite in place would leave them.
        std::fs::write(&moved, b"weights two").unwrap();
        assert_ne!(model_identity(&moved).unwrap(), first);
        // A folder: its files' names count, not only their bytes.
        let folder = dir.path().join("hf");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("config.json"), b"{}").unwrap();
        let one = model_identity(&folder).unwrap();
        std::fs::rename(folder.join("config.json"), folder.join("other.json")).unwrap();
        assert_ne!(model_identity(&folder).unwrap(), one);
        assert!(model_identity(&dir.path().join("missing")).is_err());
    }
}

//! Tests of the data module over files: every layout from fixtures written here, a corpus of
//! malformed files, random bytes, the bundled LLaMA-Factory demo files, and the host glue.

mod assets;
mod glue;
mod layouts;
mod malformed;
mod random;

use std::path::PathBuf;

use tempfile::TempDir;

use super::{load, DataConfig, Dataset, OnInvalid};
use crate::Result;

/// A temporary directory holding test files.
struct Fixtures {
    dir: TempDir,
}

impl Fixtures {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// Writes `bytes` to `name` and returns its path.
    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("writable temporary file");
        path
    }

    /// Writes and loads `bytes` with `config`.
    fn load(&self, name: &str, bytes: impl AsRef<[u8]>, config: &DataConfig) -> Result<Dataset> {
        load(&self.file(name, bytes), config)
    }
}

fn skip() -> DataConfig {
    DataConfig {
        on_invalid: OnInvalid::Skip,
        ..DataConfig::default()
    }
}

/// JSON Lines from JSON values.
fn jsonl(values: &[serde_json::Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

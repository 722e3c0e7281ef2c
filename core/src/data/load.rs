//! Loading a data file: read the records ([`super::source`]), pick the layout
//! ([`super::format`]), parse and validate each record ([`super::record`]), then either stop on
//! the first problems (`on_invalid = "error"`) or skip and count them (`"skip"`).

use std::path::Path;

use super::{
    config::{DataConfig, GroupKey, OnInvalid},
    dataset::Dataset,
    example::Example,
    format::{detect, Layout, DETECTION_SAMPLE},
    record::{self, Columns},
    source::read_records,
    {FileKind, InvalidCounts, Issue},
};
use crate::{Error, Result};

/// How many problems an error (or a report) lists.
pub const MAX_REPORTED: usize = 10;

/// Loads and validates `path` under `config` (its `path` field is not used here).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; see [`load_bytes`] for the rest.
pub fn load(path: &Path, config: &DataConfig) -> Result<Dataset> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > MAX_DATA_BYTES {
        return Err(Error::DataLayout {
            path: path.to_path_buf(),
            message: format!(
                "{size} bytes is more than the {MAX_DATA_BYTES} a data file may hold (it is read into memory whole); split it, or keep the part you train on (data.limit reads all of it first)"
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    load_bytes(path, &bytes, config)
}

/// The largest data file read: 4 GiB, well past any preference set, well short of what would
/// exhaust memory with its parsed copy beside it.
pub const MAX_DATA_BYTES: u64 = 4 << 30;

/// Loads and validates the contents `bytes` of the file `path`.
///
/// # Errors
/// - [`Error::UnreadableData`]: the records of an array cannot be located;
/// - [`Error::DataLayout`]: the layout is unknown or ambiguous;
/// - [`Error::InvalidData`]: some record is invalid and `on_invalid = "error"`;
/// - [`Error::EmptyDataset`]: no record is valid.
pub fn load_bytes(path: &Path, bytes: &[u8], config: &DataConfig) -> Result<Dataset> {
    scan(path, bytes, config)?.into_dataset(path, config.on_invalid)
}

/// Every record of a file parsed and checked, before the `on_invalid` policy applies.
#[derive(Debug, Clone)]
pub(super) struct Scan {
    /// Array or JSON Lines.
    pub file_kind: FileKind,
    /// The layout, `None` when no record is a JSON object and none was configured.
    pub layout: Option<Layout>,
    /// The valid examples.
    pub examples: Vec<Example>,
    /// Records read.
    pub n_records: usize,
    /// Every invalid record.
    pub issues: Vec<Issue>,
    /// The group column read.
    pub group_key: Option<String>,
    /// The category column read.
    pub category_key: Option<String>,
}

/// Reads, detects and parses every record of `bytes`.
///
/// # Errors
/// [`Error::UnreadableData`] and [`Error::DataLayout`] as [`load_bytes`].
pub(super) fn scan(path: &Path, bytes: &[u8], config: &DataConfig) -> Result<Scan> {
    let records = read_records(bytes).map_err(|e| Error::UnreadableData {
        path: path.to_owned(),
        line: e.line,
        message: e.message,
    })?;
    let n_records = records.records.len();
    let objects = || {
        records
            .records
            .iter()
            .filter_map(|r| r.object.as_ref().ok())
    };
    let layout = match (config.format.layout(), objects().next()) {
        (Some(layout), _) => Some(layout),
        (None, Some(_)) => Some(detect(objects()).map_err(|e| Error::DataLayout {
            path: path.to_owned(),
            message: e.to_string(),
        })?),
        // Nothing parsed as an object: every record is an issue below.
        (None, None) => None,
    };
    let group_key = match config.group_key_setting() {
        GroupKey::Named(key) => Some(key.to_owned()),
        GroupKey::None => None,
        GroupKey::Detect => DataConfig::DEFAULT_GROUP_KEYS
            .into_iter()
            .find(|key| {
                objects()
                    .take(DETECTION_SAMPLE)
                    .any(|o| o.contains_key(*key))
            })
            .map(str::to_owned),
    };
    let category_key = config.category_key.clone().filter(|k| !k.is_empty());
    let columns = Columns {
        group: group_key.as_deref(),
        category: category_key.as_deref(),
    };
    let mut examples = Vec::with_capacity(n_records);
    let mut issues = Vec::new();
    for raw in &records.records {
        let parsed = match (&raw.object, layout) {
            (Ok(object), Some(layout)) => record::parse(layout, object, columns, raw.location),
            (Err(problem), _) => Err(problem.clone()),
            // `layout` is `None` only when no record is an object, so this arm never runs.
            (Ok(_), None) => continue,
        };
        match parsed {
            Ok(example) => examples.push(example),
            Err(problem) => issues.push(Issue {
                location: raw.location,
                problem,
            }),
        }
    }
    Ok(Scan {
        file_kind: records.kind,
        layout,
        examples,
        n_records,
        issues,
        group_key,
        category_key,
    })
}

impl Scan {
    /// Records skipped, by reason.
    pub fn invalid(&self) -> InvalidCounts {
        let mut invalid = InvalidCounts::default();
        for issue in &self.issues {
            invalid.add(issue.problem.reason());
        }
        invalid
    }

    /// Applies `on_invalid` and checks that something is left.
    ///
    /// # Errors
    /// [`Error::InvalidData`] and [`Error::EmptyDataset`] as [`load_bytes`].
    pub fn into_dataset(mut self, path: &Path, on_invalid: OnInvalid) -> Result<Dataset> {
        if !self.issues.is_empty() && on_invalid == OnInvalid::Error {
            let count = self.issues.len();
            self.issues.truncate(MAX_REPORTED);
            return Err(Error::InvalidData {
                path: path.to_owned(),
                count,
                first: self.issues,
            });
        }
        let invalid = self.invalid();
        let (Some(layout), false) = (self.layout, self.examples.is_empty()) else {
            return Err(Error::EmptyDataset {
                path: path.to_owned(),
                records: self.n_records,
                skipped: invalid.total(),
            });
        };
        self.issues.truncate(MAX_REPORTED);
        Ok(Dataset {
            path: path.to_owned(),
            file_kind: self.file_kind,
            layout,
            examples: self.examples,
            n_records: self.n_records,
            invalid,
            issues: self.issues,
            group_key: self.group_key,
            category_key: self.category_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_file_past_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.jsonl");
        // Sparse: no disk space used, and nothing is read.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(MAX_DATA_BYTES + 1)
            .unwrap();
        let err = load(&path, &DataConfig::default()).unwrap_err().to_string();
        assert!(
            err.contains("huge.jsonl") && err.contains("split it"),
            "{err}"
        );
    }
}

//! A loaded data set: its examples, where they came from, and what was skipped.
//!
//! Produced by [`super::load`] (and split by [`super::eval_split`]); consumed by the views,
//! the partition metadata and the inspection report.

use std::{collections::BTreeSet, path::PathBuf};

use super::{
    example::{Answers, Example},
    format::Layout,
    {FileKind, InvalidCounts, Issue},
};

/// The validated examples of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The file read.
    pub path: PathBuf,
    /// JSON array or JSON Lines.
    pub file_kind: FileKind,
    /// The record layout (named in the config or detected).
    pub layout: Layout,
    /// Valid examples, in file order.
    pub examples: Vec<Example>,
    /// Records read, valid or not.
    pub n_records: usize,
    /// Records skipped (`on_invalid = "skip"`), by reason.
    pub invalid: InvalidCounts,
    /// The first skipped records and why, for reports.
    pub issues: Vec<Issue>,
    /// The group column read, if any.
    pub group_key: Option<String>,
    /// The category column read, if any.
    pub category_key: Option<String>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Number of (chosen, rejected) pairs.
    pub fn n_pairs(&self) -> usize {
        self.examples.iter().filter(|e| e.is_pair()).count()
    }

    /// Number of single labelled answers.
    pub fn n_singles(&self) -> usize {
        self.len() - self.n_pairs()
    }

    /// Number of single answers labelled desirable.
    pub fn n_desirable(&self) -> usize {
        self.examples
            .iter()
            .filter(|e| {
                matches!(
                    e.answers,
                    Answers::Single {
                        desirable: true,
                        ..
                    }
                )
            })
            .count()
    }

    /// Number of single answers labelled undesirable.
    pub fn n_undesirable(&self) -> usize {
        self.n_singles() - self.n_desirable()
    }

    /// The distinct group values, sorted.
    pub fn groups(&self) -> BTreeSet<&str> {
        self.examples
            .iter()
            .filter_map(|e| e.group.as_deref())
            .collect()
    }

    /// A data set of the same file holding only the examples at `indices` (in that order); the
    /// file's record count and skip counts are kept, as they describe the file.
    ///
    /// # Panics
    /// When an index is out of range; callers pass indices of this data set.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            path: self.path.clone(),
            file_kind: self.file_kind,
            layout: self.layout,
            examples: indices.iter().map(|&i| self.examples[i].clone()).collect(),
            n_records: self.n_records,
            invalid: self.invalid.clone(),
            issues: self.issues.clone(),
            group_key: self.group_key.clone(),
            category_key: self.category_key.clone(),
        }
    }
}

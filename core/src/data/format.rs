//! The record layouts fedpref reads, and how one is recognised from field names.
//!
//! | layout | required fields | optional |
//! | --- | --- | --- |
//! | `trl-paired` | `chosen`, `rejected` (strings or message lists) | `prompt` (else the common prefix, as TRL's `extract_prompt`) |
//! | `trl-unpaired` | `prompt`, `completion`, `label` (bool) | |
//! | `sharegpt-paired` | `conversations` (or `messages`), `chosen`, `rejected` (`{from, value}`) | `system` |
//! | `sharegpt-kto` | `messages` (or `conversations`) ending with the answer, `label` (or `kto_tag`) | `system` |
//!
//! Any layout may carry a user or client id column (`user_id`, `client_id`, or the configured
//! `group_key`) and a category column (`category_key`); other fields are ignored.
//!
//! Detection looks at the keys of the first records: a layout fits a record when all its
//! required fields are present; a fit whose required fields are a strict subset of another fit's
//! is dropped (`trl-paired` inside `sharegpt-paired`); the layout that fits most records wins.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A concrete record layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// TRL preference data: `prompt`, `chosen`, `rejected`.
    TrlPaired,
    /// TRL unpaired preference data: `prompt`, `completion`, `label`.
    TrlUnpaired,
    /// ShareGPT / LLaMA-Factory ranking data: `conversations`, `chosen`, `rejected`.
    SharegptPaired,
    /// ShareGPT / LLaMA-Factory KTO data: `messages`, `label`.
    SharegptKto,
}

impl Layout {
    /// Every layout, in the order messages list them.
    pub const ALL: [Layout; 4] = [
        Layout::TrlPaired,
        Layout::TrlUnpaired,
        Layout::SharegptPaired,
        Layout::SharegptKto,
    ];

    /// The name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::TrlPaired => "trl-paired",
            Layout::TrlUnpaired => "trl-unpaired",
            Layout::SharegptPaired => "sharegpt-paired",
            Layout::SharegptKto => "sharegpt-kto",
        }
    }

    /// Whether its records are (chosen, rejected) pairs.
    pub fn is_paired(self) -> bool {
        matches!(self, Layout::TrlPaired | Layout::SharegptPaired)
    }

    /// The required fields, each a list of accepted spellings.
    fn required(self) -> &'static [&'static [&'static str]] {
        match self {
            Layout::TrlPaired => &[&["chosen"], &["rejected"]],
            Layout::TrlUnpaired => &[&["prompt"], &["completion"], &["label"]],
            Layout::SharegptPaired => &[&["conversations", "messages"], &["chosen"], &["rejected"]],
            Layout::SharegptKto => &[&["messages", "conversations"], &["label", "kto_tag"]],
        }
    }

    /// A one-line description of the fields, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Layout::TrlPaired => "trl-paired (prompt?, chosen, rejected)",
            Layout::TrlUnpaired => "trl-unpaired (prompt, completion, label)",
            Layout::SharegptPaired => "sharegpt-paired (conversations, chosen, rejected, system?)",
            Layout::SharegptKto => "sharegpt-kto (messages, label, system?)",
        }
    }

    fn fits(self, keys: &Map<String, Value>) -> bool {
        self.required()
            .iter()
            .all(|names| names.iter().any(|n| keys.contains_key(*n)))
    }

    /// Whether every required field of `self` is one of `other`'s (and they differ).
    fn is_inside(self, other: Layout) -> bool {
        self != other
            && self
                .required()
                .iter()
                .all(|names| other.required().contains(names))
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configured format: a layout, or `auto` to detect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Detect the layout from the field names.
    #[default]
    Auto,
    /// See [`Layout::TrlPaired`].
    TrlPaired,
    /// See [`Layout::TrlUnpaired`].
    TrlUnpaired,
    /// See [`Layout::SharegptPaired`].
    SharegptPaired,
    /// See [`Layout::SharegptKto`].
    SharegptKto,
}

impl Format {
    /// The named layout, `None` for `auto`.
    pub fn layout(self) -> Option<Layout> {
        match self {
            Format::Auto => None,
            Format::TrlPaired => Some(Layout::TrlPaired),
            Format::TrlUnpaired => Some(Layout::TrlUnpaired),
            Format::SharegptPaired => Some(Layout::SharegptPaired),
            Format::SharegptKto => Some(Layout::SharegptKto),
        }
    }
}

/// How many records detection looks at.
pub const DETECTION_SAMPLE: usize = 100;

/// The layouts that fit one record, after dropping fits inside other fits.
pub fn fitting_layouts(record: &Map<String, Value>) -> Vec<Layout> {
    let fits: Vec<Layout> = Layout::ALL.into_iter().filter(|l| l.fits(record)).collect();
    fits.iter()
        .copied()
        .filter(|l| !fits.iter().any(|other| l.is_inside(*other)))
        .collect()
}

/// Why no layout could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectionFailure {
    /// No sampled record fits any layout.
    Unknown {
        /// The fields seen in the sampled records.
        fields: BTreeSet<String>,
    },
    /// Records fit several layouts equally.
    Ambiguous {
        /// The fields of a record that fits several layouts (or of the sample).
        fields: BTreeSet<String>,
        /// The layouts in the tie.
        layouts: Vec<Layout>,
    },
}

impl std::fmt::Display for DetectionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let known: Vec<&str> = Layout::ALL.iter().map(|l| l.describe()).collect();
        let join = |fields: &BTreeSet<String>| {
            if fields.is_empty() {
                "none".to_owned()
            } else {
                fields
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match self {
            DetectionFailure::Unknown { fields } => write!(
                f,
                "unknown data layout: fields found: {}; known layouts: {}; rename the fields or set data.format",
                join(fields),
                known.join(", ")
            ),
            DetectionFailure::Ambiguous { fields, layouts } => write!(
                f,
                "ambiguous data layout: fields {} fit {}; set data.format to the one meant (known layouts: {})",
                join(fields),
                layouts.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(" and "),
                known.join(", ")
            ),
        }
    }
}

/// Picks the layout that fits most of the first [`DETECTION_SAMPLE`] objects.
///
/// # Errors
/// [`DetectionFailure`] when none fits, or when the best fits tie or one record fits several.
pub fn detect<'a>(
    objects: impl Iterator<Item = &'a Map<String, Value>>,
) -> Result<Layout, DetectionFailure> {
    let mut votes = [0usize; Layout::ALL.len()];
    let mut fields = BTreeSet::new();
    let mut ambiguous: Option<(BTreeSet<String>, Vec<Layout>)> = None;
    for object in objects.take(DETECTION_SAMPLE) {
        fields.extend(object.keys().cloned());
        let fits = fitting_layouts(object);
        match fits.as_slice() {
            [one] => votes[Layout::ALL.iter().position(|l| l == one).unwrap_or(0)] += 1,
            [] => {}
            several => {
                if ambiguous.is_none() {
                    ambiguous = Some((object.keys().cloned().collect(), several.to_vec()));
                }
            }
        }
    }
    if let Some((fields, layouts)) = ambiguous {
        return Err(DetectionFailure::Ambiguous { fields, layouts });
    }
    let best = votes.iter().copied().max().unwrap_or(0);
    if best == 0 {
        return Err(DetectionFailure::Unknown { fields });
    }
    let winners: Vec<Layout> = Layout::ALL
        .iter()
        .zip(votes)
        .filter(|(_, v)| *v == best)
        .map(|(l, _)| *l)
        .collect();
    match winners.as_slice() {
        [one] => Ok(*one),
        _ => Err(DetectionFailure::Ambiguous {
            fields,
            layouts: winners,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(keys: &[&str]) -> Map<String, Value> {
        keys.iter()
            .map(|k| ((*k).to_owned(), Value::Null))
            .collect()
    }

    fn detect_keys(keys: &[&str]) -> Result<Layout, DetectionFailure> {
        detect(std::iter::once(&object(keys)))
    }

    #[test]
    fn each_layout_is_recognised() {
        assert_eq!(
            detect_keys(&["prompt", "chosen", "rejected"]),
            Ok(Layout::TrlPaired)
        );
        assert_eq!(
            detect_keys(&["chosen", "rejected", "score"]),
            Ok(Layout::TrlPaired)
        );
        assert_eq!(
            detect_keys(&["prompt", "completion", "label"]),
            Ok(Layout::TrlUnpaired)
        );
        assert_eq!(
            detect_keys(&["conversations", "chosen", "rejected", "system"]),
            Ok(Layout::SharegptPaired)
        );
        assert_eq!(detect_keys(&["messages", "label"]), Ok(Layout::SharegptKto));
        assert_eq!(
            detect_keys(&["messages", "kto_tag", "user_id"]),
            Ok(Layout::SharegptKto)
        );
    }

    #[test]
    fn unknown_and_ambiguous_layouts_list_fields_and_layouts() {
        let err = detect_keys(&["instruction", "output"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fields found: instruction, output"), "{err}");
        assert!(
            err.contains("trl-unpaired (prompt, completion, label)"),
            "{err}"
        );
        let err = detect_keys(&["prompt", "chosen", "rejected", "completion", "label"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fit trl-paired and trl-unpaired"), "{err}");
        let a = object(&["prompt", "chosen", "rejected"]);
        let b = object(&["prompt", "completion", "label"]);
        let err = detect([&a, &b].into_iter()).unwrap_err();
        assert!(matches!(err, DetectionFailure::Ambiguous { .. }));
        // The majority wins over a stray record.
        assert_eq!(detect([&a, &a, &b].into_iter()), Ok(Layout::TrlPaired));
    }

    #[test]
    fn formats_read_from_config_names() {
        let f: Format = serde_json::from_str("\"sharegpt-kto\"").unwrap();
        assert_eq!(f.layout(), Some(Layout::SharegptKto));
        assert_eq!(
            serde_json::to_string(&Format::TrlPaired).unwrap(),
            "\"trl-paired\""
        );
    }
}

//! Training units: what one client trains on, in tokens, with its reference log-probs.
//!
//! A paired loss trains on whole pairs (chosen and rejected answer of one prompt); an unpaired
//! loss trains on single labelled answers. A loss's KL batch is formed step by step from the
//! answers each step draws ([`super::kl_pairs`]), not fixed here.

use fedpref_plugin_api::{Assignment, DataNeeds, LossSpec, View};
use serde::{Deserialize, Serialize};

use crate::data::TokenizedDataset;
use fedpref_model::logprobs::MaskedSequence;

/// One sequence with its reference log-prob (NaN until filled from the cache). Written to a
/// client shard as its sequence alone: the reference is recomputed where the client trains.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scored {
    /// Prompt and answer ids, answer masked in.
    pub sequence: MaskedSequence,
    /// Summed answer log-prob under the reference model.
    #[serde(skip, default = "unfilled")]
    pub reference: f32,
}

fn unfilled() -> f32 {
    f32::NAN
}

impl Scored {
    fn new(sequence: MaskedSequence) -> Self {
        Self {
            sequence,
            reference: f32::NAN,
        }
    }

    /// Number of answer tokens.
    pub fn n_tokens(&self) -> u32 {
        self.sequence.answer_mask.iter().filter(|&&m| m).count() as u32
    }
}

/// One unit of local training.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A (chosen, rejected) pair.
    Pair {
        /// The preferred answer.
        chosen: Scored,
        /// The dispreferred answer.
        rejected: Scored,
    },
    /// A single labelled answer.
    Single {
        /// The answer.
        answer: Scored,
        /// Desirable (chosen) or undesirable (rejected).
        desirable: bool,
    },
}

impl Unit {
    /// Every sequence of the unit, for filling reference log-probs.
    pub fn scored_mut(&mut self) -> Vec<&mut Scored> {
        match self {
            Unit::Pair { chosen, rejected } => vec![chosen, rejected],
            Unit::Single { answer, .. } => vec![answer],
        }
    }
}

/// `(desirable, undesirable)` answers among `units`, a pair counting one of each: the client's
/// label balance that a loss may weight by (KTO's `desirable_weight = "auto"`).
pub fn label_counts(units: &[Unit]) -> (u64, u64) {
    units.iter().fold((0, 0), |(d, u), unit| match unit {
        Unit::Pair { .. } => (d + 1, u + 1),
        Unit::Single {
            desirable: true, ..
        } => (d + 1, u),
        Unit::Single { .. } => (d, u + 1),
    })
}

/// A single answer: (example index, which answer of it, desirable). Pairs split here keep
/// both answers on this client (KTO); KTOR's `redistribute` partition already split them.
type Single = (usize, usize, bool);

/// The units of one client's data for a loss with `spec`; examples dropped as overlong are
/// skipped.
pub fn client_units(items: &[Assignment], data: &TokenizedDataset, spec: LossSpec) -> Vec<Unit> {
    if spec.data == DataNeeds::Paired {
        return items
            .iter()
            .filter(|a| a.view == View::Whole)
            .filter_map(|a| data.examples[a.example as usize].as_ref())
            .filter(|e| e.answers.len() == 2)
            .map(|e| Unit::Pair {
                chosen: Scored::new(e.sequence(0)),
                rejected: Scored::new(e.sequence(1)),
            })
            .collect();
    }
    let singles: Vec<Single> = items
        .iter()
        .flat_map(|a| {
            let example = a.example as usize;
            let label = data.examples[example].as_ref().map(|e| e.desirable);
            match (a.view, label) {
                (_, None) => vec![],
                (View::Whole, Some(None)) => vec![(example, 0, true), (example, 1, false)],
                (View::Whole, Some(Some(desirable))) => vec![(example, 0, desirable)],
                (View::Chosen, _) => vec![(example, 0, true)],
                (View::Rejected, _) => vec![(example, 1, false)],
            }
        })
        .collect();
    singles
        .iter()
        .map(|&(example, answer, desirable)| {
            let tokens = data.examples[example]
                .as_ref()
                .expect("overlong examples were filtered out above");
            Unit::Single {
                answer: Scored::new(tokens.sequence(answer)),
                desirable,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use fedpref_plugin_api::View;

    use super::*;
    use crate::data::{LengthCounts, TokenizedExample};

    /// Example `i`: prompt `[100 + i]`; a pair answers `[10i+1]` / `[10i+2]`, a single
    /// answer `[10i+1]` with its label.
    fn data(kinds: &[Option<bool>]) -> TokenizedDataset {
        let examples = kinds
            .iter()
            .enumerate()
            .map(|(i, desirable)| {
                let i = i as u32;
                let answers = match desirable {
                    None => vec![vec![10 * i + 1], vec![10 * i + 2]],
                    Some(_) => vec![vec![10 * i + 1]],
                };
                Some(TokenizedExample {
                    prompt: vec![100 + i],
                    answers,
                    desirable: *desirable,
                })
            })
            .collect();
        TokenizedDataset {
            examples,
            lengths: LengthCounts::default(),
        }
    }

    fn spec(data: DataNeeds, needs_kl_batch: bool) -> LossSpec {
        LossSpec {
            data,
            needs_reference: true,
            needs_kl_batch,
        }
    }

    fn whole(examples: &[u64]) -> Vec<Assignment> {
        examples
            .iter()
            .map(|&example| Assignment {
                example,
                view: View::Whole,
            })
            .collect()
    }

    fn ids(s: &Scored) -> Vec<u32> {
        s.sequence.ids.clone()
    }

    #[test]
    fn a_paired_loss_trains_on_whole_pairs_only() {
        let data = data(&[None, Some(true), None]);
        let units = client_units(&whole(&[0, 1, 2]), &data, spec(DataNeeds::Paired, false));
        assert_eq!(units.len(), 2, "the single answer is not a pair");
        let Unit::Pair { chosen, rejected } = &units[1] else {
            panic!("a pair unit")
        };
        assert_eq!((ids(chosen), ids(rejected)), (vec![102, 21], vec![102, 22]));
        assert_eq!(chosen.n_tokens(), 1);
        assert!(chosen.reference.is_nan(), "references are filled later");
    }

    #[test]
    fn an_unpaired_loss_splits_pairs_and_keeps_labels_and_views() {
        let data = data(&[None, Some(false)]);
        let mut items = whole(&[0, 1]);
        items.push(Assignment {
            example: 0,
            view: View::Rejected,
        });
        let units = client_units(&items, &data, spec(DataNeeds::Unpaired, false));
        let singles: Vec<(Vec<u32>, bool)> = units
            .iter()
            .map(|u| match u {
                Unit::Single { answer, desirable } => (ids(answer), *desirable),
                Unit::Pair { .. } => panic!("a single unit"),
            })
            .collect();
        assert_eq!(
            singles,
            [
                (vec![100, 1], true),
                (vec![100, 2], false),
                (vec![101, 11], false),
                (vec![100, 2], false)
            ]
        );
    }

    #[test]
    fn label_counts_are_the_clients_answers_by_label() {
        // One pair (one answer of each label), a desirable and two undesirable single answers.
        let data = data(&[None, Some(true), Some(false), Some(false)]);
        let items = whole(&[0, 1, 2, 3]);
        let paired = client_units(&items, &data, spec(DataNeeds::Paired, false));
        assert_eq!(label_counts(&paired), (1, 1));
        let singles = client_units(&items, &data, spec(DataNeeds::Unpaired, true));
        assert_eq!(label_counts(&singles), (2, 3));
    }
}

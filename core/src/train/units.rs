//! Training units: what one client trains on, in tokens, with its reference log-probs.
//!
//! A paired loss trains on whole pairs (chosen and rejected answer of one prompt); an unpaired
//! loss trains on single labelled answers, and with a KL batch each answer's prompt is also
//! paired with another answer of the same client (a fixed, seeded derangement, so the KL
//! sequences and their reference log-probs never change and can be cached).

use fedpref_plugin_api::{Assignment, DataNeeds, LossSpec, View};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
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
    /// A single labelled answer, with its KL-batch sequence when the loss needs one.
    Single {
        /// The answer.
        answer: Scored,
        /// Desirable (chosen) or undesirable (rejected).
        desirable: bool,
        /// This answer's prompt with another answer of the same client.
        kl: Option<Scored>,
    },
}

impl Unit {
    /// Every sequence of the unit, for filling reference log-probs.
    pub fn scored_mut(&mut self) -> Vec<&mut Scored> {
        match self {
            Unit::Pair { chosen, rejected } => vec![chosen, rejected],
            Unit::Single { answer, kl, .. } => {
                let mut all = vec![answer];
                all.extend(kl.as_mut());
                all
            }
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
/// skipped. `kl_seed` seeds the KL derangement.
pub fn client_units(
    items: &[Assignment],
    data: &TokenizedDataset,
    spec: LossSpec,
    kl_seed: u64,
) -> Vec<Unit> {
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
    let partners = spec
        .needs_kl_batch
        .then(|| derangement(singles.len(), kl_seed));
    singles
        .iter()
        .enumerate()
        .map(|(i, &(example, answer, desirable))| {
            let tokens = data.examples[example]
                .as_ref()
                .expect("overlong examples were filtered out above");
            let kl = partners.as_ref().map(|p| {
                let (other, other_answer, _) = singles[p[i]];
                let other = data.examples[other]
                    .as_ref()
                    .expect("overlong examples were filtered out above");
                Scored::new(tokens.sequence_with(other_answer, other))
            });
            Unit::Single {
                answer: Scored::new(tokens.sequence(answer)),
                desirable,
                kl,
            }
        })
        .collect()
}

/// A permutation of `0..n` without fixed points (for n >= 2), seeded: a shuffled cycle.
pub fn derangement(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut partner = vec![0; n];
    for k in 0..n {
        partner[order[k]] = order[(k + 1) % n];
    }
    partner
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
        let units = client_units(&whole(&[0, 1, 2]), &data, spec(DataNeeds::Paired, false), 0);
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
        let units = client_units(&items, &data, spec(DataNeeds::Unpaired, false), 0);
        let singles: Vec<(Vec<u32>, bool)> = units
            .iter()
            .map(|u| match u {
                Unit::Single {
                    answer,
                    desirable,
                    kl,
                } => {
                    assert!(kl.is_none(), "no KL batch asked for");
                    (ids(answer), *desirable)
                }
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
    fn kl_partners_are_other_answers_with_this_prompt_fixed_by_the_seed() {
        let data = data(&[None, None, Some(true)]);
        let units = client_units(
            &whole(&[0, 1, 2]),
            &data,
            spec(DataNeeds::Unpaired, true),
            7,
        );
        let again = client_units(
            &whole(&[0, 1, 2]),
            &data,
            spec(DataNeeds::Unpaired, true),
            7,
        );
        let kl_of = |units: &[Unit]| -> Vec<Vec<u32>> {
            units
                .iter()
                .map(|u| match u {
                    Unit::Single { kl: Some(kl), .. } => ids(kl),
                    _ => panic!("a single unit with a KL sequence"),
                })
                .collect()
        };
        assert_eq!(kl_of(&units), kl_of(&again));
        for (unit, kl) in units.iter().zip(kl_of(&units)) {
            let Unit::Single { answer, .. } = unit else {
                panic!("a single unit")
            };
            assert_eq!(kl[0], answer.sequence.ids[0], "the answer's own prompt");
            assert_ne!(kl[1], answer.sequence.ids[1], "another answer");
        }
    }

    #[test]
    fn label_counts_are_the_clients_answers_by_label() {
        // One pair (one answer of each label), a desirable and two undesirable single answers.
        let data = data(&[None, Some(true), Some(false), Some(false)]);
        let items = whole(&[0, 1, 2, 3]);
        let paired = client_units(&items, &data, spec(DataNeeds::Paired, false), 0);
        assert_eq!(label_counts(&paired), (1, 1));
        let singles = client_units(&items, &data, spec(DataNeeds::Unpaired, true), 0);
        assert_eq!(label_counts(&singles), (2, 3));
    }

    #[test]
    fn derangements_have_no_fixed_point_and_follow_the_seed() {
        for n in 2..12 {
            let partner = derangement(n, 3);
            let mut sorted = partner.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
            assert!(partner.iter().enumerate().all(|(i, &p)| i != p));
            assert_eq!(partner, derangement(n, 3));
        }
        assert_ne!(derangement(10, 1), derangement(10, 2));
    }
}

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

//! Views of an example: as a pair (chosen + rejected) or as single labelled answers
//! (desirable = chosen, undesirable = rejected).
//!
//! A pair can always be split into two singles; single answers can never be made into pairs,
//! so a loss that needs pairs on such data is a configuration error ([`require_pairs`]), found
//! before any model loads. Partitions name views with the plugin API's [`View`].

use fedpref_plugin_api::View;

use super::{
    dataset::Dataset,
    example::{Answers, Example},
    message::Message,
};
use crate::{Error, Result};

/// What a client trains on for one (example, view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleView<'a> {
    /// A whole pair.
    Pair {
        /// The prompt.
        prompt: &'a [Message],
        /// The preferred answer.
        chosen: &'a [Message],
        /// The dispreferred answer.
        rejected: &'a [Message],
    },
    /// One labelled answer.
    Single {
        /// The prompt.
        prompt: &'a [Message],
        /// The answer.
        completion: &'a [Message],
        /// Desirable (chosen) or undesirable (rejected).
        desirable: bool,
    },
}

impl Example {
    /// The part of this example named by `view`; `None` when `view` asks for one answer of a
    /// single-answer example (only pairs have a chosen and a rejected answer).
    pub fn view(&self, view: View) -> Option<ExampleView<'_>> {
        let prompt = self.prompt.as_slice();
        match (&self.answers, view) {
            (Answers::Pair { chosen, rejected }, View::Whole) => Some(ExampleView::Pair {
                prompt,
                chosen,
                rejected,
            }),
            (Answers::Pair { chosen, .. }, View::Chosen) => Some(ExampleView::Single {
                prompt,
                completion: chosen,
                desirable: true,
            }),
            (Answers::Pair { rejected, .. }, View::Rejected) => Some(ExampleView::Single {
                prompt,
                completion: rejected,
                desirable: false,
            }),
            (
                Answers::Single {
                    completion,
                    desirable,
                },
                View::Whole,
            ) => Some(ExampleView::Single {
                prompt,
                completion,
                desirable: *desirable,
            }),
            (Answers::Single { .. }, View::Chosen | View::Rejected) => None,
        }
    }

    /// The views that present this example as single answers: chosen and rejected for a pair,
    /// the whole example for a single answer.
    pub fn single_views(&self) -> &'static [View] {
        if self.is_pair() {
            &[View::Chosen, View::Rejected]
        } else {
            &[View::Whole]
        }
    }
}

impl Dataset {
    /// Every example as single labelled answers, `(example index, view, answer)`: each pair gives
    /// its chosen (desirable) and rejected (undesirable) answer, each single answer itself.
    pub fn singles(&self) -> impl Iterator<Item = (usize, View, ExampleView<'_>)> + '_ {
        self.examples.iter().enumerate().flat_map(|(i, e)| {
            e.single_views()
                .iter()
                .filter_map(move |&v| e.view(v).map(|view| (i, v, view)))
        })
    }
}

/// Checks that `dataset` is made of pairs, as the loss `loss` (e.g. DPO) needs.
///
/// # Errors
/// [`Error::NeedsPairs`] naming the loss and the file when any example is a single answer.
pub fn require_pairs(dataset: &Dataset, loss: &str) -> Result<()> {
    let n_singles = dataset.n_singles();
    if n_singles == 0 {
        return Ok(());
    }
    let detail = if dataset.n_pairs() == 0 {
        format!(
            "holds only single labelled answers ({n_singles}, layout {})",
            dataset.layout
        )
    } else {
        format!(
            "holds {n_singles} single labelled answers among its {} examples",
            dataset.len()
        )
    };
    Err(Error::NeedsPairs {
        path: dataset.path.clone(),
        loss: loss.to_owned(),
        detail,
    })
}

//! `redistribute`: KTOR's split (arXiv 2502.14187). Every pair is broken into its two single
//! answers ([`View::Chosen`] as desirable, [`View::Rejected`] as undesirable), pooled with the
//! data set's own single answers, and the pool is dealt out uniformly at random without
//! replacement.
//!
//! By default (`sizes = "keep"`) every client keeps its size: client `c` gets
//! `client_sizes[c]` answers, the number it holds in the partition the host rearranges (the
//! configured one, which DPO and KTO train on; a whole pair counts two). This is the paper's
//! design: its code (`main_pref.py` of the authors' fork of OpenFedLLM, `--redistribute_dataset`)
//! overwrites every answer slot of every client with an answer drawn without replacement from
//! the pool of all clients' answers, a random permutation that changes which answers a client
//! holds but not how many, so only the pairing is broken. `sizes = "equal"` deals equal shares
//! (sizes differ by at most one), as `iid` deals examples, which also evens out the clients'
//! sizes, a second change on top of breaking the pairs. Without sizes from the host (no
//! partition to rearrange, e.g. a `fedpref data inspect` preview), `keep` deals equal shares
//! too.
//!
//! The released code does not in fact move anything: `Dataset.map` returns a new data set,
//! which the loop discards, and the mapped function mutates its argument and returns `None`,
//! which `datasets` treats as "no update". So the paper's KTOR runs trained on KTO's layout;
//! fedpref implements what the paper describes and the code intends.
//!
//! Metrics: `pairs_on_same_client`, the number of pairs whose two answers landed on one client,
//! and `pairs_on_same_client_share`, that count over the number of pairs (NaN without pairs).
//! With `N` answers and client sizes `s_c`, a pair stays together with probability
//! `Σ_c s_c (s_c − 1) / (N (N − 1))`, about `1 / n_clients` for equal sizes.

use std::collections::HashMap;

use fedpref_plugin_api::{
    Assignment, ExampleKind, ExampleMeta, Metric, Params, PartitionInput, PartitionOutput,
    PartitionerFunction, PluginError, View,
};
use rand::seq::SliceRandom;

use crate::common;

/// How many answers each client of `redistribute` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizes {
    /// The host's `client_sizes`: each client keeps its size (the default).
    Keep,
    /// Equal shares over `n_clients`.
    Equal,
}

/// KTOR's redistribution of single answers. Parameter `sizes`: `"keep"` (default) or
/// `"equal"`.
#[derive(Debug, Clone, Copy)]
pub struct Redistribute {
    /// How many answers each client gets.
    pub sizes: Sizes,
}

impl Redistribute {
    /// Reads `sizes`.
    ///
    /// # Errors
    /// `InvalidParams` for another value or any other key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let sizes = match params.choice("sizes", &["keep", "equal"], "keep")? {
            "equal" => Sizes::Equal,
            _ => Sizes::Keep,
        };
        params.finish()?;
        Ok(Redistribute { sizes })
    }
}

impl PartitionerFunction for Redistribute {
    fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput, PluginError> {
        let examples = input.examples.as_slice();
        let answers = single_answers(examples);
        let sizes = self.client_sizes(input, answers.len())?;
        let mut answers = answers;
        answers.shuffle(&mut common::rng(input.seed));
        let clients = common::cut(answers, &sizes);
        let together = pairs_on_same_client(&clients);
        let n_pairs = examples
            .iter()
            .filter(|m| m.kind == ExampleKind::Pair)
            .count();
        let share = if n_pairs == 0 {
            f64::NAN
        } else {
            together as f64 / n_pairs as f64
        };
        let metrics = vec![
            Metric::new("pairs_on_same_client", together as f64),
            Metric::new("pairs_on_same_client_share", share),
        ];
        Ok(common::output(clients, metrics))
    }
}

impl Redistribute {
    /// How many of the `n_answers` answers each client gets.
    fn client_sizes(
        &self,
        input: &PartitionInput<'_>,
        n_answers: usize,
    ) -> Result<Vec<usize>, PluginError> {
        let kept = input.client_sizes.as_slice();
        if self.sizes == Sizes::Equal || kept.is_empty() {
            let n_clients =
                common::check_counts("redistribute", n_answers, input.n_clients, "single answers")?;
            return Ok(common::equal_sizes(n_answers, n_clients));
        }
        let total: u64 = kept.iter().sum();
        if total != n_answers as u64 {
            return Err(PluginError::invalid_input(format!(
                "redistribute: client_sizes add up to {total} answers but the data holds {n_answers}"
            )));
        }
        if let Some(c) = kept.iter().position(|&s| s == 0) {
            return Err(PluginError::invalid_input(format!(
                "redistribute: client_sizes[{c}] = 0; every client needs an answer"
            )));
        }
        Ok(kept.iter().map(|&s| s as usize).collect())
    }
}

/// Every single answer of `examples`: both answers of each pair, and each single example whole.
fn single_answers(examples: &[ExampleMeta]) -> Vec<Assignment> {
    let mut answers = Vec::with_capacity(examples.len() * 2);
    for meta in examples {
        match meta.kind {
            ExampleKind::Pair => {
                answers.push(Assignment {
                    example: meta.index,
                    view: View::Chosen,
                });
                answers.push(Assignment {
                    example: meta.index,
                    view: View::Rejected,
                });
            }
            ExampleKind::Desirable | ExampleKind::Undesirable => answers.push(common::whole(meta)),
        }
    }
    answers
}

/// The number of examples whose chosen and rejected answers sit on the same client.
pub fn pairs_on_same_client(clients: &[Vec<Assignment>]) -> usize {
    let mut chosen_on: HashMap<u64, usize> = HashMap::new();
    for (c, client) in clients.iter().enumerate() {
        for a in client.iter().filter(|a| a.view == View::Chosen) {
            chosen_on.insert(a.example, c);
        }
    }
    clients
        .iter()
        .enumerate()
        .flat_map(|(c, client)| client.iter().map(move |a| (c, a)))
        .filter(|(c, a)| a.view == View::Rejected && chosen_on.get(&a.example) == Some(c))
        .count()
}

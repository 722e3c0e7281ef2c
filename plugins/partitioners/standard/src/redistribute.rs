//! `redistribute`: KTOR's split (arXiv 2502.14187). Every pair is broken into its two single
//! answers ([`View::Chosen`] as desirable, [`View::Rejected`] as undesirable), pooled with the
//! data set's own single answers, and the pool is dealt out uniformly at random without
//! replacement in equal shares (sizes differ by at most one), exactly as `iid` deals examples.
//!
//! Metrics: `pairs_on_same_client`, the number of pairs whose two answers landed on one client,
//! and `pairs_on_same_client_share`, that count over the number of pairs (NaN without pairs).
//! With `m` answers per client out of `N`, a pair stays together with probability
//! `(m - 1) / (N - 1)`, about `1 / n_clients`.

use std::collections::HashMap;

use fedpref_plugin_api::{
    Assignment, ExampleKind, Metric, Params, PartitionInput, PartitionOutput, PartitionerFunction,
    PluginError, View,
};

use crate::common;

/// KTOR's redistribution of single answers. No parameters.
#[derive(Debug, Clone, Copy)]
pub struct Redistribute;

impl Redistribute {
    /// Reads (no) parameters.
    ///
    /// # Errors
    /// `InvalidParams` for any key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        params.finish()?;
        Ok(Redistribute)
    }
}

impl PartitionerFunction for Redistribute {
    fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput, PluginError> {
        let examples = input.examples.as_slice();
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
                ExampleKind::Desirable | ExampleKind::Undesirable => {
                    answers.push(common::whole(meta))
                }
            }
        }
        let n_clients = common::check_counts(
            "redistribute",
            answers.len(),
            input.n_clients,
            "single answers",
        )?;
        let clients = common::deal_equal(answers, n_clients, &mut common::rng(input.seed));
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

//! Per-client data: the (example, view) lists a partitioner returned, checked so that every
//! example (or every single answer) is placed exactly once, with the counts reports and
//! training need.
//!
//! Fed by a partitioner's [`PartitionOutput`] and the [`ExampleMeta`]s it was given; read by
//! local training (which turns each assignment into tokens) and by `fedpref data inspect`.

use std::collections::HashMap;

use fedpref_plugin_api::{Assignment, ExampleKind, ExampleMeta, PartitionOutput, View};

use crate::{Error, Result};

/// What one client holds, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounts {
    /// Whole pairs.
    pub pairs: usize,
    /// Desirable single answers (chosen halves of pairs included).
    pub desirable: usize,
    /// Undesirable single answers (rejected halves of pairs included).
    pub undesirable: usize,
}

impl ClientCounts {
    /// Items the client holds (a whole pair counts once).
    pub fn items(&self) -> usize {
        self.pairs + self.desirable + self.undesirable
    }

    /// Single answers the client trains on when pairs are split inside it (KTO).
    pub fn answers(&self) -> usize {
        2 * self.pairs + self.desirable + self.undesirable
    }
}

/// The validated partition of a training set.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientData {
    clients: Vec<Vec<Assignment>>,
    kinds: Vec<ExampleKind>,
}

impl ClientData {
    /// Checks `output` of the partitioner `partitioner` against the `examples` it was given
    /// (whose `index` must be their position): every index in range, answer views only on
    /// pairs, and every example placed once, whole or as both of its answers.
    ///
    /// # Errors
    /// [`Error::InvalidPartition`] naming the partitioner and the first fault.
    pub fn from_partition(
        partitioner: &str,
        output: &PartitionOutput,
        examples: &[ExampleMeta],
    ) -> Result<Self> {
        let fail = |message: String| Error::InvalidPartition {
            partitioner: partitioner.to_owned(),
            message,
        };
        let kinds: Vec<ExampleKind> = examples.iter().map(|m| m.kind).collect();
        let clients: Vec<Vec<Assignment>> = output.clients.iter().map(|c| c.to_vec()).collect();
        if clients.is_empty() {
            return Err(fail("no clients".to_owned()));
        }
        let mut seen: HashMap<(u64, View), usize> = HashMap::new();
        for (c, client) in clients.iter().enumerate() {
            if client.is_empty() {
                return Err(fail(format!("client {c} is empty")));
            }
            for a in client {
                let Some(kind) = usize::try_from(a.example).ok().and_then(|i| kinds.get(i)) else {
                    return Err(fail(format!(
                        "client {c} holds example {} of {}",
                        a.example,
                        kinds.len()
                    )));
                };
                if a.view != View::Whole && *kind != ExampleKind::Pair {
                    return Err(fail(format!(
                        "client {c} holds the {:?} answer of single example {}",
                        a.view, a.example
                    )));
                }
                let count = seen.entry((a.example, a.view)).or_default();
                *count += 1;
                if *count > 1 {
                    return Err(fail(format!(
                        "example {} ({:?}) is placed twice",
                        a.example, a.view
                    )));
                }
            }
        }
        for (i, kind) in kinds.iter().enumerate() {
            let i = i as u64;
            let whole = seen.contains_key(&(i, View::Whole));
            let chosen = seen.contains_key(&(i, View::Chosen));
            let rejected = seen.contains_key(&(i, View::Rejected));
            let once = match kind {
                ExampleKind::Pair => {
                    (whole && !chosen && !rejected) || (!whole && chosen && rejected)
                }
                _ => whole,
            };
            if !once {
                return Err(fail(format!(
                    "example {i} is not placed exactly once (whole, or as both answers)"
                )));
            }
        }
        Ok(Self { clients, kinds })
    }

    /// Number of clients.
    pub fn n_clients(&self) -> usize {
        self.clients.len()
    }

    /// Client `c`'s assignments.
    ///
    /// # Panics
    /// When `c >= n_clients()`.
    pub fn client(&self, c: usize) -> &[Assignment] {
        &self.clients[c]
    }

    /// Every client's assignments.
    pub fn clients(&self) -> &[Vec<Assignment>] {
        &self.clients
    }

    /// Pairs, desirable and undesirable answers held by client `c`.
    ///
    /// # Panics
    /// When `c >= n_clients()`.
    pub fn counts(&self, c: usize) -> ClientCounts {
        let mut counts = ClientCounts::default();
        for a in &self.clients[c] {
            // Indices were checked in `from_partition`.
            match (self.kinds[a.example as usize], a.view) {
                (ExampleKind::Pair, View::Whole) => counts.pairs += 1,
                (ExampleKind::Desirable, _) | (_, View::Chosen) => counts.desirable += 1,
                (ExampleKind::Undesirable, _) | (_, View::Rejected) => counts.undesirable += 1,
            }
        }
        counts
    }

    /// Counts summed over clients.
    pub fn totals(&self) -> ClientCounts {
        (0..self.n_clients())
            .map(|c| self.counts(c))
            .fold(ClientCounts::default(), |t, c| ClientCounts {
                pairs: t.pairs + c.pairs,
                desirable: t.desirable + c.desirable,
                undesirable: t.undesirable + c.undesirable,
            })
    }

    /// Pairs whose two answers were split apart but still sit on one client.
    pub fn split_pairs_on_same_client(&self) -> usize {
        let mut chosen_on = HashMap::new();
        for (c, client) in self.clients.iter().enumerate() {
            for a in client.iter().filter(|a| a.view == View::Chosen) {
                chosen_on.insert(a.example, c);
            }
        }
        self.clients
            .iter()
            .enumerate()
            .map(|(c, client)| {
                client
                    .iter()
                    .filter(|a| a.view == View::Rejected && chosen_on.get(&a.example) == Some(&c))
                    .count()
            })
            .sum()
    }

    /// Pairs whose chosen and rejected answers a client can compare: whole pairs plus split
    /// pairs whose answers share a client.
    pub fn pairs_intact(&self) -> usize {
        self.totals().pairs + self.split_pairs_on_same_client()
    }

    /// Client `c`'s data as single answers, pairs split inside the client (what an unpaired
    /// loss such as KTO trains on): a whole pair becomes its chosen and rejected views.
    pub fn singles(&self, c: usize) -> Vec<Assignment> {
        self.clients[c]
            .iter()
            .flat_map(|a| match (self.kinds[a.example as usize], a.view) {
                (ExampleKind::Pair, View::Whole) => vec![
                    Assignment {
                        example: a.example,
                        view: View::Chosen,
                    },
                    Assignment {
                        example: a.example,
                        view: View::Rejected,
                    },
                ],
                _ => vec![*a],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{RString, RVec};

    use super::*;

    fn metas(kinds: &[ExampleKind]) -> Vec<ExampleMeta> {
        kinds
            .iter()
            .enumerate()
            .map(|(i, &kind)| ExampleMeta {
                index: i as u64,
                kind,
                group: RString::new(),
                category: RString::new(),
                length: 1,
            })
            .collect()
    }

    fn output(clients: &[&[(u64, View)]]) -> PartitionOutput {
        PartitionOutput {
            clients: clients
                .iter()
                .map(|c| {
                    c.iter()
                        .map(|&(example, view)| Assignment { example, view })
                        .collect::<RVec<_>>()
                })
                .collect(),
            metrics: RVec::new(),
        }
    }

    const KINDS: [ExampleKind; 4] = [
        ExampleKind::Pair,
        ExampleKind::Pair,
        ExampleKind::Desirable,
        ExampleKind::Undesirable,
    ];

    #[test]
    fn counts_and_intact_pairs() {
        let out = output(&[
            &[(0, View::Whole), (1, View::Chosen), (2, View::Whole)],
            &[(1, View::Rejected), (3, View::Whole)],
        ]);
        let data = ClientData::from_partition("test", &out, &metas(&KINDS)).unwrap();
        assert_eq!(
            data.counts(0),
            ClientCounts {
                pairs: 1,
                desirable: 2,
                undesirable: 0
            }
        );
        assert_eq!(
            data.counts(1),
            ClientCounts {
                pairs: 0,
                desirable: 0,
                undesirable: 2
            }
        );
        assert_eq!(data.totals().answers(), 6);
        assert_eq!(data.split_pairs_on_same_client(), 0);
        assert_eq!(data.pairs_intact(), 1);
        assert_eq!(data.singles(0).len(), 4);
        let together = output(&[&[
            (0, View::Whole),
            (1, View::Chosen),
            (1, View::Rejected),
            (2, View::Whole),
            (3, View::Whole),
        ]]);
        let data = ClientData::from_partition("test", &together, &metas(&KINDS)).unwrap();
        assert_eq!(
            (data.split_pairs_on_same_client(), data.pairs_intact()),
            (1, 2)
        );
    }

    #[test]
    fn broken_partitions_are_rejected() {
        type Clients<'a> = &'a [&'a [(u64, View)]];
        let cases: [(Clients, &str); 6] = [
            (
                &[&[(0, View::Whole), (1, View::Whole), (2, View::Whole)]],
                "example 3 is not placed",
            ),
            (
                &[&[
                    (0, View::Whole),
                    (0, View::Whole),
                    (1, View::Whole),
                    (2, View::Whole),
                    (3, View::Whole),
                ]],
                "placed twice",
            ),
            (
                &[&[
                    (0, View::Whole),
                    (0, View::Chosen),
                    (0, View::Rejected),
                    (1, View::Whole),
                    (2, View::Whole),
                    (3, View::Whole),
                ]],
                "example 0 is not placed",
            ),
            (
                &[&[
                    (0, View::Whole),
                    (1, View::Whole),
                    (2, View::Chosen),
                    (3, View::Whole),
                ]],
                "answer of single example 2",
            ),
            (
                &[&[
                    (0, View::Whole),
                    (1, View::Whole),
                    (2, View::Whole),
                    (3, View::Whole),
                    (9, View::Whole),
                ]],
                "holds example 9 of 4",
            ),
            (
                &[
                    &[
                        (0, View::Whole),
                        (1, View::Whole),
                        (2, View::Whole),
                        (3, View::Whole),
                    ],
                    &[],
                ],
                "client 1 is empty",
            ),
        ];
        for (clients, expected) in cases {
            let err = ClientData::from_partition("iid", &output(clients), &metas(&KINDS))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected) && err.starts_with("partitioner \"iid\""),
                "{err}"
            );
        }
    }
}

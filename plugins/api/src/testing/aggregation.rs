//! Test helpers for aggregator plugins: [`Round`], one round's client updates owned so that a
//! test can build and edit them, and [`assert_close`] for parameter vectors.

use abi_stable::std_types::RSlice;

use crate::{AggregationInput, AggregationOutput, AggregatorFunction, ClientUpdate, PluginError};

/// One client's result of one round, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// The client index.
    pub client: u32,
    /// `(p,)` its parameters after local training.
    pub params: Vec<f32>,
    /// Its example count.
    pub n_examples: u64,
    /// Its local optimizer steps.
    pub local_steps: u32,
    /// Its local learning rate.
    pub learning_rate: f32,
}

impl Client {
    /// Client `client` with `params`, one example, one local step at learning rate `1e-4`.
    pub fn new(client: u32, params: &[f32]) -> Self {
        Self {
            client,
            params: params.to_vec(),
            n_examples: 1,
            local_steps: 1,
            learning_rate: 1e-4,
        }
    }
}

/// One round's input, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// The round number.
    pub round: u32,
    /// The size of the federation.
    pub n_clients: u32,
    /// `(p,)` the global parameters the clients started from.
    pub global: Vec<f32>,
    /// The clients' results, in the order the host hands them over.
    pub clients: Vec<Client>,
}

impl Round {
    /// Round 0 of a federation of `n_clients` from `(client, parameters)` pairs in the order
    /// given (see [`Client::new`]), starting from a global vector of zeros.
    pub fn new(n_clients: u32, clients: &[(u32, &[f32])]) -> Self {
        let p = clients.first().map_or(0, |c| c.1.len());
        Self {
            round: 0,
            n_clients,
            global: vec![0.0; p],
            clients: clients.iter().map(|&(c, v)| Client::new(c, v)).collect(),
        }
    }

    /// The updates as the host hands them over.
    pub fn updates(&self) -> Vec<ClientUpdate<'_>> {
        self.clients
            .iter()
            .map(|c| ClientUpdate {
                client: c.client,
                params: RSlice::from_slice(&c.params),
                n_examples: c.n_examples,
                local_steps: c.local_steps,
                learning_rate: c.learning_rate,
            })
            .collect()
    }

    /// Calls `f` with this round as an [`AggregationInput`] (for an FFI object, say).
    pub fn with_input<R>(&self, f: impl FnOnce(&AggregationInput<'_>) -> R) -> R {
        let updates = self.updates();
        f(&AggregationInput {
            round: self.round,
            n_clients: self.n_clients,
            global: RSlice::from_slice(&self.global),
            updates: RSlice::from_slice(&updates),
        })
    }

    /// Runs `aggregator` on this round.
    ///
    /// # Errors
    /// Any error of `aggregate`.
    pub fn run(
        &self,
        aggregator: &mut dyn AggregatorFunction,
    ) -> Result<AggregationOutput, PluginError> {
        self.with_input(|input| aggregator.aggregate(input))
    }

    /// This round without client `client`.
    pub fn without(&self, client: u32) -> Self {
        let mut out = self.clone();
        out.clients.retain(|c| c.client != client);
        out
    }
}

/// Asserts `|got − want| <= 1e-6 |want|` entrywise (plus `1e-12`, so that exact zeros
/// compare), after checking the lengths; `what` names the vector in a failure.
///
/// # Panics
/// When the lengths or an entry differ.
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= 1e-6 * w.abs() + 1e-12,
            "{what}[{j}]: got {g}, want {w} (error {err:e})"
        );
    }
}

//! Partitioner components: how the examples of a data set are dealt out to clients.
//!
//! The host describes every example by a few fields ([`ExampleMeta`]); a partitioner returns, for
//! every client, the list of (example, view) it trains on. A pair may go to a client whole
//! ([`View::Whole`]) or as its single answers ([`View::Chosen`], [`View::Rejected`]), which is how
//! KTOR's `redistribute` breaks pairs across clients.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, RResult, RSlice, RString, RVec},
    StableAbi,
};

use crate::{Metric, PluginError};

/// What an example holds.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleKind {
    /// A (chosen, rejected) pair.
    Pair,
    /// A single answer labelled desirable.
    Desirable,
    /// A single answer labelled undesirable.
    Undesirable,
}

/// One example as a partitioner sees it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ExampleMeta {
    /// Index of the example in the training set, `0..n`.
    pub index: u64,
    /// Pair or single answer.
    pub kind: ExampleKind,
    /// The user or client id column, empty when the data has none (`natural` split).
    pub group: RString,
    /// The value of the configured category key, empty when none (`dirichlet` split).
    pub category: RString,
    /// Length in tokens (or characters before tokenization) of prompt plus answer(s).
    pub length: u32,
}

/// Which part of an example a client receives.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// The whole example: a pair, or a single answer with its own label.
    Whole,
    /// Only the chosen answer of a pair, as a desirable single answer.
    Chosen,
    /// Only the rejected answer of a pair, as an undesirable single answer.
    Rejected,
}

/// One item of a client's data.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Assignment {
    /// Index into the example list.
    pub example: u64,
    /// The part of it the client gets.
    pub view: View,
}

/// A partition request.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct PartitionInput<'a> {
    /// Every training example.
    pub examples: RSlice<'a, ExampleMeta>,
    /// Number of clients to create (a `natural` split may ignore it and report its own count).
    pub n_clients: u32,
    /// Seed of the partition's random number generator.
    pub seed: u64,
    /// `(k,)` for a rule that rearranges the configured partition (KTOR's `redistribute`): the
    /// number of single answers each of its `k` clients holds (a whole pair counts two). Empty
    /// when there is no partition to rearrange. Since API 0.2.
    pub client_sizes: RSlice<'a, u64>,
}

/// A partition: `clients[c]` is client `c`'s data.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PartitionOutput {
    /// One list per client.
    pub clients: RVec<RVec<Assignment>>,
    /// Metrics such as `pairs_on_same_client`.
    pub metrics: RVec<Metric>,
}

/// A partition rule, as a plugin author writes it.
pub trait PartitionerFunction: Send + Sync + 'static {
    /// Deals the examples out to clients; every example (or single answer) exactly once.
    ///
    /// # Errors
    /// `InvalidInput` when the data cannot be split as asked (e.g. fewer examples than clients).
    fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput, PluginError>;
}

/// The FFI-safe face of a partitioner. Every method catches panics of the implementation.
#[sabi_trait]
pub trait Partitioner: Send + Sync {
    /// See [`PartitionerFunction::partition`].
    #[sabi(last_prefix_field)]
    fn partition(&self, input: &PartitionInput<'_>) -> RResult<PartitionOutput, PluginError>;
}

/// An owned partitioner object crossing the plugin boundary.
pub type PartitionerObject = Partitioner_TO<'static, RBox<()>>;

/// Adapts a [`PartitionerFunction`] to the FFI trait with panic guards.
pub struct PartitionerBox<T>(T);

impl<T: PartitionerFunction> PartitionerBox<T> {
    /// Boxes `partitioner` as an FFI object.
    // The adapter only ever lives inside the FFI object, so that is what `new` returns.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(partitioner: T) -> PartitionerObject {
        Partitioner_TO::from_value(
            PartitionerBox(partitioner),
            abi_stable::sabi_trait::TD_Opaque,
        )
    }
}

impl<T: PartitionerFunction> Partitioner for PartitionerBox<T> {
    fn partition(&self, input: &PartitionInput<'_>) -> RResult<PartitionOutput, PluginError> {
        crate::guard(|| self.0.partition(input))
    }
}

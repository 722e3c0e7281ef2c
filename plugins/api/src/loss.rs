//! Loss components: a preference loss as a function of per-sequence log-probabilities.
//!
//! The host runs the model; a loss sees only small arrays, one entry per sequence in the batch:
//! the summed answer log-probability under the policy (`logp_policy`, nats) and under the
//! reference model (`logp_ref`), the answer's token count, its label and its partner. The loss
//! returns its value and `d loss / d logp_policy[i]`; the host back-propagates
//! `sum_i stop_grad(grad[i]) * logp_policy[i]`, which by the chain rule gives the exact
//! gradient with respect to the model parameters.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, RResult, RSlice, RVec},
    StableAbi,
};

use crate::{Metric, PluginError};

/// Which examples a loss can train on.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataNeeds {
    /// (chosen, rejected) pairs on the same client, e.g. DPO.
    Paired,
    /// Single labelled answers; pairs are split into their two answers inside each client, e.g. KTO.
    Unpaired,
    /// Single labelled answers after the `redistribute` partition has broken every pair across
    /// clients (KTOR).
    Redistributed,
}

impl DataNeeds {
    /// The lowercase name used in configs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            DataNeeds::Paired => "paired",
            DataNeeds::Unpaired => "unpaired",
            DataNeeds::Redistributed => "redistributed",
        }
    }
}

/// What a loss asks of the host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossSpec {
    /// How the data must be laid out.
    pub data: DataNeeds,
    /// Whether `logp_ref` must be filled (reference model = base with the adapter off).
    pub needs_reference: bool,
    /// Whether a KL batch (each prompt with another example's answer) must be supplied.
    pub needs_kl_batch: bool,
}

/// The label of one sequence.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// The chosen answer of a pair, or a desirable single answer.
    Chosen,
    /// The rejected answer of a pair, or an undesirable single answer.
    Rejected,
}

/// The sequences of one batch. All per-sequence slices have the same length `n`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct LossBatch<'a> {
    /// `(n,)` summed log-probability of each answer under the policy, in nats.
    pub logp_policy: RSlice<'a, f32>,
    /// `(n,)` the same under the reference model; empty when the loss needs no reference.
    pub logp_ref: RSlice<'a, f32>,
    /// `(n,)` number of answer tokens in each sequence (at least 1).
    pub n_tokens: RSlice<'a, u32>,
    /// `(n,)` the label of each sequence.
    pub labels: RSlice<'a, Label>,
    /// `(n,)` index of the sequence this one is paired with, or -1 for a single answer.
    /// Pairing is symmetric: `pair[pair[i]] == i`, and the two carry opposite labels.
    pub pair: RSlice<'a, i64>,
    /// `(m,)` policy log-probs of the KL batch (prompt i with a mismatched answer); empty unless
    /// the loss asked for a KL batch.
    pub kl_logp_policy: RSlice<'a, f32>,
    /// `(m,)` reference log-probs of the KL batch.
    pub kl_logp_ref: RSlice<'a, f32>,
    /// Desirable (chosen) answers in the training data of the client this batch comes from, a
    /// pair counting one of each: what a weight derived from the client's label balance (KTO's
    /// `desirable_weight = "auto"`) reads, where the batch's own counts would vary from batch to
    /// batch. Since API 0.2.
    pub client_desirable: u64,
    /// Undesirable (rejected) answers in that client's training data. Since API 0.2.
    pub client_undesirable: u64,
}

impl LossBatch<'_> {
    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.logp_policy.len()
    }

    /// Whether the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.logp_policy.is_empty()
    }

    /// Checks that every per-sequence slice has the same length, that every answer has at least
    /// one token, that pairs are symmetric with
    /// opposite labels, and that the reference / KL arrays are present when `spec` needs them.
    ///
    /// # Errors
    /// An `InvalidInput` error naming the first inconsistency.
    pub fn validate(&self, spec: &LossSpec) -> Result<(), PluginError> {
        let n = self.len();
        let lengths = [
            ("n_tokens", self.n_tokens.len()),
            ("labels", self.labels.len()),
            ("pair", self.pair.len()),
        ];
        for (name, len) in lengths {
            if len != n {
                return Err(PluginError::invalid_input(format!(
                    "{name} has {len} entries but logp_policy has {n}"
                )));
            }
        }
        if spec.needs_reference && self.logp_ref.len() != n {
            return Err(PluginError::invalid_input(format!(
                "logp_ref has {} entries but logp_policy has {n}; this loss needs reference log-probs",
                self.logp_ref.len()
            )));
        }
        if spec.needs_kl_batch && self.kl_logp_policy.len() != self.kl_logp_ref.len() {
            return Err(PluginError::invalid_input(format!(
                "kl_logp_policy has {} entries but kl_logp_ref has {}",
                self.kl_logp_policy.len(),
                self.kl_logp_ref.len()
            )));
        }
        if let Some(i) = self.n_tokens.iter().position(|&t| t == 0) {
            return Err(PluginError::invalid_input(format!(
                "n_tokens[{i}] = 0; every answer needs at least one token"
            )));
        }
        for (i, &p) in self.pair.iter().enumerate() {
            if p < 0 {
                continue;
            }
            let j = p as usize;
            if j >= n || self.pair[j] != i as i64 || j == i {
                return Err(PluginError::invalid_input(format!(
                    "pair[{i}] = {p} is not a symmetric partner index"
                )));
            }
            if self.labels[i] == self.labels[j] {
                return Err(PluginError::invalid_input(format!(
                    "sequences {i} and {j} are paired but carry the same label"
                )));
            }
        }
        Ok(())
    }

    /// Checks that the log-probabilities `spec` asks for are finite: `logp_policy`, then
    /// `logp_ref` when the loss needs a reference, then the KL batch when it needs one. Arrays
    /// the loss did not ask for are ignored, whatever they hold.
    ///
    /// # Errors
    /// An `InvalidInput` error naming the array, the index and the value.
    pub fn check_finite(&self, spec: &LossSpec) -> Result<(), PluginError> {
        let arrays = [
            ("logp_policy", &self.logp_policy, true),
            ("logp_ref", &self.logp_ref, spec.needs_reference),
            ("kl_logp_policy", &self.kl_logp_policy, spec.needs_kl_batch),
            ("kl_logp_ref", &self.kl_logp_ref, spec.needs_kl_batch),
        ];
        for (name, values, _) in arrays.into_iter().filter(|(_, _, needed)| *needed) {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(PluginError::invalid_input(format!(
                    "{name}[{i}] = {} is not finite",
                    values[i]
                )));
            }
        }
        Ok(())
    }

    /// The `(chosen, rejected)` index pairs of the batch, each pair once, in order of the chosen
    /// index.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        (0..self.len())
            .filter(|&i| self.labels[i] == Label::Chosen && self.pair[i] >= 0)
            .map(|i| (i, self.pair[i] as usize))
            .collect()
    }
}

/// What a loss returns for one batch.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct LossOutput {
    /// The scalar loss (a mean over the batch as the method defines it).
    pub loss: f64,
    /// `(n,)` d loss / d logp_policy[i].
    pub grad_logp_policy: RVec<f32>,
    /// `(m,)` d loss / d kl_logp_policy[j]; empty when the loss detaches the KL term.
    pub grad_kl_logp_policy: RVec<f32>,
    /// Metrics such as `rewards/chosen`, `rewards/margins`, `rewards/accuracies`.
    pub metrics: RVec<Metric>,
}

/// A preference loss, as a plugin author writes it (plain Rust; no FFI types needed beyond the
/// batch). Wrap it with [`LossBox::new`] to hand it to the host.
pub trait LossFunction: Send + Sync + 'static {
    /// What this loss asks of the host.
    fn spec(&self) -> LossSpec;
    /// The loss, its gradient with respect to each `logp_policy` entry, and metrics.
    ///
    /// # Errors
    /// `InvalidInput` when the batch does not fit the loss (e.g. DPO given unpaired sequences).
    fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput, PluginError>;
}

/// The FFI-safe face of a loss. Every method catches panics of the implementation.
#[sabi_trait]
pub trait Loss: Send + Sync {
    /// What this loss asks of the host.
    fn spec(&self) -> LossSpec;
    /// See [`LossFunction::evaluate`].
    #[sabi(last_prefix_field)]
    fn evaluate(&self, batch: &LossBatch<'_>) -> RResult<LossOutput, PluginError>;
}

/// An owned loss object crossing the plugin boundary.
pub type LossObject = Loss_TO<'static, RBox<()>>;

/// Adapts a [`LossFunction`] to the FFI trait with panic guards.
pub struct LossBox<T> {
    inner: T,
    // Read once at construction (which runs inside the plugin's guarded constructor), so that
    // `spec` cannot panic across the boundary.
    spec: LossSpec,
}

impl<T: LossFunction> LossBox<T> {
    /// Boxes `loss` as an FFI object.
    // The adapter only ever lives inside the FFI object, so that is what `new` returns.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(loss: T) -> LossObject {
        let spec = loss.spec();
        Loss_TO::from_value(
            LossBox { inner: loss, spec },
            abi_stable::sabi_trait::TD_Opaque,
        )
    }
}

impl<T: LossFunction> Loss for LossBox<T> {
    fn spec(&self) -> LossSpec {
        self.spec
    }

    fn evaluate(&self, batch: &LossBatch<'_>) -> RResult<LossOutput, PluginError> {
        crate::guard(|| self.inner.evaluate(batch))
    }
}

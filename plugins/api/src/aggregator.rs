//! Aggregator components: the server's update rule over flat parameter vectors.
//!
//! The host flattens the trainable (LoRA) parameters of the global model and of every client in
//! a fixed order and hands them over as `f32` slices. Client-side needs (FedProx's proximal term,
//! SCAFFOLD's correction) are not callbacks: before local training the aggregator returns a
//! [`ClientPlan`] that the host applies on device at every step as
//! `grad += prox_mu * (w - w_global) + gradient_offset`.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, RResult, RSlice, RVec},
    StableAbi,
};

use crate::{Metric, PluginError};

/// The result of one client's local training, as the aggregator sees it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct ClientUpdate<'a> {
    /// Stable client index, `0..n_clients`.
    pub client: u32,
    /// `(p,)` the client's parameters after local training.
    pub params: RSlice<'a, f32>,
    /// Number of training examples (or single answers) the client holds; FedAvg's weight.
    pub n_examples: u64,
    /// Number of optimizer steps the client took this round (SCAFFOLD's K).
    pub local_steps: u32,
    /// The local learning rate of this round (SCAFFOLD's eta_l).
    pub learning_rate: f32,
}

/// One round's aggregation input.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct AggregationInput<'a> {
    /// The round number, starting at 0.
    pub round: u32,
    /// Total number of clients in the federation (sampled or not).
    pub n_clients: u32,
    /// `(p,)` the global parameters the clients started from.
    pub global: RSlice<'a, f32>,
    /// The clients that returned an update this round (at least one).
    pub updates: RSlice<'a, ClientUpdate<'a>>,
}

impl AggregationInput<'_> {
    /// Checks what every rule needs: at least one update, each with the global vector's length, a
    /// client index below `n_clients`, no client twice, and only finite values.
    ///
    /// # Errors
    /// `InvalidInput` naming the rule, the client and the bad value.
    pub fn validate(&self, rule: &str) -> Result<(), PluginError> {
        let input = self;
        if input.updates.is_empty() {
            return Err(PluginError::invalid_input(format!(
                "{rule}: no client update to aggregate in round {}",
                input.round
            )));
        }
        let p = input.global.len();
        if let Some(j) = input.global.iter().position(|x| !x.is_finite()) {
            return Err(PluginError::invalid_input(format!(
                "{rule}: global parameter {j} is {}",
                input.global[j]
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for update in input.updates.iter() {
            let client = update.client;
            if update.params.len() != p {
                return Err(PluginError::invalid_input(format!(
                    "{rule}: client {client} sent {} parameters but the global model has {p}",
                    update.params.len()
                )));
            }
            if client >= input.n_clients {
                return Err(PluginError::invalid_input(format!(
                    "{rule}: client index {client} is out of range for a federation of {} clients",
                    input.n_clients
                )));
            }
            if !seen.insert(client) {
                return Err(PluginError::invalid_input(format!(
                    "{rule}: client {client} sent two updates in round {}",
                    input.round
                )));
            }
            if let Some(j) = update.params.iter().position(|x| !x.is_finite()) {
                return Err(PluginError::invalid_input(format!(
                    "{rule}: client {client} sent parameter {j} = {}",
                    update.params[j]
                )));
            }
        }
        Ok(())
    }

    /// The metrics every rule reports for the new global vector `new_global` (same length as
    /// `global`): `clients`, the number of updates aggregated, and `update_norm`,
    /// `‖w_{t+1} − w_t‖₂` accumulated in `f64`.
    pub fn base_metrics(&self, new_global: &[f32]) -> Vec<Metric> {
        let update_norm = self
            .global
            .iter()
            .zip(new_global)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            .sqrt();
        vec![
            Metric::new("clients", self.updates.len() as f64),
            Metric::new("update_norm", update_norm),
        ]
    }
}

/// What the host must apply during a client's local training. At every optimizer step:
///
/// ```text
/// g ← g + prox_mu · (w − w_global) + gradient_offset      before clipping and the optimizer
/// w ← optimizer_step(w, g)
/// w ← w − lr · weight_offset                              after the optimizer step
/// ```
///
/// with `lr` the round's local learning rate.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ClientPlan {
    /// FedProx's mu: adds `mu * (w - w_global)` to the gradient; 0 disables it.
    pub prox_mu: f32,
    /// `(p,)` a constant added to the gradient at every step, before clipping and the optimizer
    /// (SCAFFOLD as published, with SGD: `c - c_i`); empty for none.
    pub gradient_offset: RVec<f32>,
    /// `(p,)` a constant whose `lr` multiple the host subtracts from the parameters after every
    /// optimizer step, outside clipping and the optimizer's normalization (SCAFFOLD as
    /// OpenFedLLM applies it: `c - c_i`); empty for none. Since API 0.2.
    pub weight_offset: RVec<f32>,
}

impl ClientPlan {
    /// Plain local training, nothing added.
    pub fn plain() -> Self {
        Self {
            prox_mu: 0.0,
            gradient_offset: RVec::new(),
            weight_offset: RVec::new(),
        }
    }
}

/// The result of one aggregation.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct AggregationOutput {
    /// `(p,)` the new global parameters.
    pub global: RVec<f32>,
    /// Metrics such as the update norm or the number of clients kept by a robust rule.
    pub metrics: RVec<Metric>,
}

/// A server update rule, as a plugin author writes it.
pub trait AggregatorFunction: Send + Sync + 'static {
    /// What client `client` must apply during local training starting from `global`.
    ///
    /// # Errors
    /// `InvalidInput` on inconsistent sizes.
    fn client_plan(&self, client: u32, global: &[f32]) -> Result<ClientPlan, PluginError> {
        let _ = (client, global);
        Ok(ClientPlan::plain())
    }
    /// Combines the client updates into new global parameters and updates the internal state.
    ///
    /// # Errors
    /// `InvalidInput` on inconsistent sizes or an empty update list.
    fn aggregate(&mut self, input: &AggregationInput<'_>)
        -> Result<AggregationOutput, PluginError>;
    /// The internal state (momentum, moments, control variates) as bytes, for checkpoints.
    fn save_state(&self) -> Result<Vec<u8>, PluginError>;
    /// Restores a state written by [`AggregatorFunction::save_state`].
    ///
    /// # Errors
    /// `InvalidInput` when the bytes are not a state of this aggregator.
    fn load_state(&mut self, state: &[u8]) -> Result<(), PluginError>;
}

/// The FFI-safe face of an aggregator. Every method catches panics of the implementation.
#[sabi_trait]
pub trait Aggregator: Send + Sync {
    /// See [`AggregatorFunction::client_plan`].
    fn client_plan(&self, client: u32, global: RSlice<'_, f32>)
        -> RResult<ClientPlan, PluginError>;
    /// See [`AggregatorFunction::aggregate`].
    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> RResult<AggregationOutput, PluginError>;
    /// See [`AggregatorFunction::save_state`].
    fn save_state(&self) -> RResult<RVec<u8>, PluginError>;
    /// See [`AggregatorFunction::load_state`].
    #[sabi(last_prefix_field)]
    fn load_state(&mut self, state: RSlice<'_, u8>) -> RResult<(), PluginError>;
}

/// An owned aggregator object crossing the plugin boundary.
pub type AggregatorObject = Aggregator_TO<'static, RBox<()>>;

/// Adapts an [`AggregatorFunction`] to the FFI trait with panic guards.
pub struct AggregatorBox<T>(T);

impl<T: AggregatorFunction> AggregatorBox<T> {
    /// Boxes `aggregator` as an FFI object.
    // The adapter only ever lives inside the FFI object, so that is what `new` returns.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(aggregator: T) -> AggregatorObject {
        Aggregator_TO::from_value(AggregatorBox(aggregator), abi_stable::sabi_trait::TD_Opaque)
    }
}

impl<T: AggregatorFunction> Aggregator for AggregatorBox<T> {
    fn client_plan(
        &self,
        client: u32,
        global: RSlice<'_, f32>,
    ) -> RResult<ClientPlan, PluginError> {
        crate::guard(|| self.0.client_plan(client, global.as_slice()))
    }

    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> RResult<AggregationOutput, PluginError> {
        crate::guard(|| self.0.aggregate(input))
    }

    fn save_state(&self) -> RResult<RVec<u8>, PluginError> {
        crate::guard(|| self.0.save_state().map(RVec::from))
    }

    fn load_state(&mut self, state: RSlice<'_, u8>) -> RResult<(), PluginError> {
        crate::guard(|| self.0.load_state(state.as_slice()))
    }
}

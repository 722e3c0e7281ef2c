//! FedAvg and FedProx: the example-weighted average of the clients' parameters. FedProx differs
//! only on the client, through the proximal term its [`ClientPlan`] asks the host to apply.
//!
//! Neither keeps state; `save_state` writes the [`state`] header alone.

use fedpref_plugin_api::{
    check_non_negative, state, AggregationInput, AggregationOutput, AggregatorFunction, ClientPlan,
    Params, PluginError,
};

use crate::{options::Weighting, round};

/// Federated Averaging (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks
/// from Decentralized Data", Algorithm 1):
///
/// ```text
/// w_{t+1} = Σ_{i∈S_t} (n_i / n) y_i,    n = Σ_{i∈S_t} n_i
/// ```
///
/// with `y_i` client `i`'s parameters after local training and `n_i` its example count. This is
/// also OpenFedLLM's default branch of `global_aggregate`. No parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FedAvg;

impl FedAvg {
    /// Accepts no parameters.
    ///
    /// # Errors
    /// `InvalidParams` for any key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        params.finish()?;
        Ok(FedAvg)
    }
}

/// The FedAvg round shared by `fedavg` and `fedprox`.
fn weighted_average(
    rule: &str,
    input: &AggregationInput<'_>,
) -> Result<AggregationOutput, PluginError> {
    input.validate(rule)?;
    let updates = input.updates.as_slice();
    let p = round::weights(rule, updates, Weighting::Examples)?;
    let mut sum = vec![0f64; input.global.len()];
    for (update, &weight) in updates.iter().zip(&p) {
        for (s, &y) in sum.iter_mut().zip(update.params.iter()) {
            *s += weight * f64::from(y);
        }
    }
    let global = round::finish_global(rule, sum.into_iter())?;
    let metrics = input.base_metrics(&global);
    Ok(AggregationOutput {
        global: global.into(),
        metrics: metrics.into(),
    })
}

impl AggregatorFunction for FedAvg {
    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> Result<AggregationOutput, PluginError> {
        weighted_average("fedavg", input)
    }

    fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        Ok(state::header("fedavg"))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        state::check_stateless(bytes, "fedavg")
    }
}

/// FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"): each client
/// minimizes `F_i(w) + (μ/2) ‖w − w_t‖²`, so the host adds
///
/// ```text
/// grad += μ (w − w_t)
/// ```
///
/// at every local step ([`ClientPlan::prox_mu`] = `mu`); the server rule is [`FedAvg`]'s
/// example-weighted average, as in OpenFedLLM (whose `SFTTrainerFedProx` adds the same
/// `mu / 2 * ‖w − w_t‖²` to the loss).
///
/// Parameter: `mu` (default 0.01, OpenFedLLM's `prox_mu` default), finite and `>= 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FedProx {
    /// The proximal weight μ.
    pub mu: f64,
}

impl FedProx {
    /// Reads `mu`.
    ///
    /// # Errors
    /// `InvalidParams` for a negative or non-finite `mu` or an unknown key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let mu = check_non_negative("mu", params.f64_or("mu", 0.01)?)?;
        params.finish()?;
        Ok(Self { mu })
    }
}

impl AggregatorFunction for FedProx {
    fn client_plan(&self, _client: u32, _global: &[f32]) -> Result<ClientPlan, PluginError> {
        Ok(ClientPlan {
            prox_mu: self.mu as f32,
            ..ClientPlan::plain()
        })
    }

    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> Result<AggregationOutput, PluginError> {
        weighted_average("fedprox", input)
    }

    fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        Ok(state::header("fedprox"))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        state::check_stateless(bytes, "fedprox")
    }
}

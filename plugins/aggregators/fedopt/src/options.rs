//! Parameter vocabulary shared by the rules: which formula family (`variant`), how client deltas
//! are weighted (`weighting`), and the range check of decay rates (the other numeric checks are
//! the API's `check_positive` and `check_non_negative`).

use fedpref_plugin_api::{Params, PluginError};

/// Which formulas a rule follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The rule as its paper publishes it (the default).
    Published,
    /// The rule as OpenFedLLM's `federated_learning/fed_global.py` computes it, which the study
    /// being reproduced (arXiv 2502.14187) ran.
    OpenFedLlm,
}

impl Variant {
    /// The accepted values of `variant`.
    pub const NAMES: [&'static str; 2] = ["published", "openfedllm"];

    /// The default server momentum β1 (FedAvgM's `momentum`, FedYogi's and FedAdam's `beta1`):
    /// 0.9 as published, and 0.5 for `openfedllm`, the `fedopt_beta1` default of the authors'
    /// fork of OpenFedLLM (`config.py`) that the study ran with (upstream OpenFedLLM has 0.9).
    pub fn default_momentum(self) -> f64 {
        match self {
            Variant::Published => 0.9,
            Variant::OpenFedLlm => 0.5,
        }
    }

    /// Reads `variant` (default `"published"`).
    ///
    /// # Errors
    /// `InvalidParams` listing the allowed values.
    pub fn read(params: &Params) -> Result<Self, PluginError> {
        Ok(match params.choice("variant", &Self::NAMES, "published")? {
            "openfedllm" => Variant::OpenFedLlm,
            _ => Variant::Published,
        })
    }
}

/// How the client deltas `y_i − w_t` are weighted into `Δ_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// `p_i = n_i / Σ_j n_j`, FedAvg's weights.
    Examples,
    /// `p_i = 1 / |S_t|`, the plain mean over the clients of the round.
    Uniform,
}

impl Weighting {
    /// The accepted values of `weighting`.
    pub const NAMES: [&'static str; 2] = ["examples", "uniform"];

    fn as_str(self) -> &'static str {
        match self {
            Weighting::Examples => "examples",
            Weighting::Uniform => "uniform",
        }
    }

    /// Reads `weighting`, defaulting to `default`.
    ///
    /// # Errors
    /// `InvalidParams` listing the allowed values.
    pub fn read(params: &Params, default: Weighting) -> Result<Self, PluginError> {
        Ok(
            match params.choice("weighting", &Self::NAMES, default.as_str())? {
                "uniform" => Weighting::Uniform,
                _ => Weighting::Examples,
            },
        )
    }
}

/// Reads a decay rate in `[0, 1)`.
///
/// # Errors
/// `InvalidParams` naming the key and the range.
pub fn decay(params: &Params, key: &str, default: f64) -> Result<f64, PluginError> {
    let value = params.f64_or(key, default)?;
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(PluginError::invalid_params(format!(
            "`{key}` = {value} is outside [0, 1)"
        )))
    }
}

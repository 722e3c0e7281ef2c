//! `[privacy]`: the settings the privacy layer reads (composed into the experiment config).

use serde::{Deserialize, Serialize};

/// `[privacy]`: differential privacy of one client's data (`mode = "client"`: DP-FedAvg, McMahan
/// et al. 2018) or of one example (`mode = "example"`: DP-SGD, Abadi et al. 2016, inside each
/// client). What is clipped to `clip_norm` is a client's update or one example's gradient; the
/// Gaussian noise added to their sum has standard deviation `noise_multiplier * clip_norm`, and
/// the sum is divided by the expected number of contributions; a Rényi-DP accountant gives ε
/// at `delta`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySection {
    /// `none`, `client` or `example`.
    pub mode: PrivacyMode,
    /// L2 bound on each client's update (its change of the adapter), or on each example's
    /// gradient.
    pub clip_norm: f64,
    /// Noise standard deviation over the clip norm.
    pub noise_multiplier: f64,
    /// The δ at which ε is reported.
    pub delta: f64,
    /// Refuse a config whose rounds would spend more than this ε; 0: no budget.
    pub epsilon_budget: f64,
}

/// Which differential privacy a run has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivacyMode {
    /// None.
    #[default]
    None,
    /// Client-level: one client's whole data is what the guarantee hides.
    Client,
    /// Example-level: one example (a pair for DPO, one labelled answer for KTO) of a client is
    /// what the guarantee hides, from anyone who sees that client's updates.
    Example,
}

impl Default for PrivacySection {
    fn default() -> Self {
        Self {
            mode: PrivacyMode::None,
            clip_norm: 1.0,
            noise_multiplier: 1.0,
            delta: 1e-5,
            epsilon_budget: 0.0,
        }
    }
}

impl PrivacySection {
    /// Left out of a run's `config.toml` when off, so runs written before the section existed
    /// still match their config.
    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }

    /// Whether client-level DP is on.
    pub fn client_level(&self) -> bool {
        self.mode == PrivacyMode::Client
    }

    /// Whether example-level DP-SGD is on.
    pub fn example_level(&self) -> bool {
        self.mode == PrivacyMode::Example
    }
}

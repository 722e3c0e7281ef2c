//! `[privacy]`: the settings the privacy layer reads (composed into the experiment config).

use serde::{Deserialize, Serialize};

/// `[privacy]`: client-level differential privacy (DP-FedAvg, McMahan et al. 2018). Each
/// client's update is clipped to `clip_norm`, the server adds Gaussian noise of standard
/// deviation `noise_multiplier * clip_norm` to their sum and divides by the expected number of
/// clients per round; a Rényi-DP accountant gives ε at `delta` after each round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySection {
    /// `none` or `client`.
    pub mode: PrivacyMode,
    /// L2 bound on each client's update (its change of the adapter).
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
}

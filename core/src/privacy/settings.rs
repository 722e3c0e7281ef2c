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
    /// Adaptive clipping (client-level only; Andrew et al. 2021): the clip norm follows this
    /// quantile of the clients' update norms, starting from `clip_norm`; 0: a fixed clip norm.
    pub target_quantile: f64,
    /// η: each round the clip norm is multiplied by `exp(−η (b − target_quantile))`, b the
    /// (noised) fraction of updates that were within it.
    pub clip_learning_rate: f64,
    /// σ_b: the standard deviation of the noise on the count of updates within the clip norm;
    /// 0: the expected number of clients per round / 20, as Andrew et al. suggest.
    pub quantile_noise: f64,
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
            target_quantile: 0.0,
            clip_learning_rate: 0.2,
            quantile_noise: 0.0,
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

    /// Whether the clip norm adapts (client-level DP with a target quantile).
    pub fn adaptive_clipping(&self) -> bool {
        self.client_level() && self.target_quantile > 0.0
    }

    /// σ_b for `expected_clients` clients per round (its default when 0).
    pub fn quantile_noise_for(&self, expected_clients: f64) -> f64 {
        if self.quantile_noise > 0.0 {
            self.quantile_noise
        } else {
            expected_clients / 20.0
        }
    }

    /// The noise multiplier of the updates' sum. With adaptive clipping the count of updates
    /// within the clip norm is released too, as `Σ (b_k − ½)` (sensitivity ½) with noise σ_b;
    /// the two Gaussian releases together are as private as one of multiplier z when the
    /// updates get `z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2)` (Andrew et al. 2021, Section 3.1). `None`
    /// when `2σ_b ≤ z`: the count alone would spend the whole budget.
    pub fn update_noise_multiplier(&self, expected_clients: f64) -> Option<f64> {
        let z = self.noise_multiplier;
        if !self.adaptive_clipping() {
            return Some(z);
        }
        let count = 2.0 * self.quantile_noise_for(expected_clients);
        let rest = z.powi(-2) - count.powi(-2);
        (rest > 0.0).then(|| rest.powf(-0.5))
    }

    /// Whether example-level DP-SGD is on.
    pub fn example_level(&self) -> bool {
        self.mode == PrivacyMode::Example
    }
}

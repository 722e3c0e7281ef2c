//! The SimPO loss over per-sequence log-probabilities (Meng, Xia and Chen 2024, "SimPO: Simple
//! Preference Optimization with a Reference-Free Reward"; `simpo_loss` of the authors'
//! `SimPOTrainer`, and TRL `CPOTrainer.cpo_loss` with `loss_type="simpo"`,
//! `simpo_gamma = gamma_beta_ratio·β` and `cpo_alpha = 0`).
//!
//! Fed by the host's [`LossBatch`]: (chosen, rejected) pairs of summed policy log-probs and
//! their token counts; no reference model (`logp_ref` is empty, and ignored when present).
//! Feeds back the mean loss over pairs, its gradient with respect to every `logp_policy[i]`,
//! and reward metrics.
//!
//! The reward is the length-normalized policy log-prob, so for a pair (chosen `c`, rejected `r`)
//! with β = `beta`, γ = `gamma_beta_ratio`·β and ε = `label_smoothing`:
//!
//! ```text
//! x = β·logπ(c)/|c| − β·logπ(r)/|r| − γ
//! ℓ = −(1−ε) log σ(x) − ε log σ(−x)          (ε = 0: the paper's eq. 6)
//! ```
//!
//! and the batch loss is the mean of ℓ over pairs.

use fedpref_plugin_api::{
    check_non_negative, check_positive,
    math::{log_sigmoid, sigmoid},
    paired, DataNeeds, LossBatch, LossFunction, LossOutput, LossSpec, Params, PluginError,
};

/// What SimPO asks of the host: (chosen, rejected) pairs and nothing else — no reference
/// log-probs, no KL batch.
pub const SIMPO_SPEC: LossSpec = LossSpec {
    data: DataNeeds::Paired,
    needs_reference: false,
    needs_kl_batch: false,
};

/// The per-pair loss ℓ(x) and its slope dℓ/dx, finite for every finite `x`.
pub fn pair_loss(label_smoothing: f64, x: f64) -> (f64, f64) {
    let eps = label_smoothing;
    // d/dx −log σ(x) = −σ(−x); d/dx −log σ(−x) = σ(x).
    (
        -(1.0 - eps) * log_sigmoid(x) - eps * log_sigmoid(-x),
        -(1.0 - eps) * sigmoid(-x) + eps * sigmoid(x),
    )
}

/// The SimPO loss with its parameters resolved.
///
/// Parameters (a JSON object): `beta` (β > 0, default 2.0), `gamma_beta_ratio` (γ/β ≥ 0,
/// default 0.5), `label_smoothing` (ε in [0, 0.5), default 0).
///
/// The margin is given as the ratio γ/β, as the SimPO authors' code takes it
/// (`gamma_beta_ratio`, "normalized and easier to tune under different beta values"); TRL's
/// `CPOTrainer` takes the absolute margin instead, `simpo_gamma` = γ = `gamma_beta_ratio`·β. The
/// default ratio 0.5 is the starting point the SimPO authors recommend (their README's tips on
/// hyperparameter tuning, with a grid between 0 and 1), and β = 2.0 the value their paper used
/// for the base models, so γ = 1.0 by default. Their trainer's dataclass default is 0.25 (γ =
/// 0.5 at β = 2, the same γ as TRL's default `simpo_gamma`); their released models used ratios
/// from 0.1 to 0.8.
///
/// `evaluate` returns the mean of ℓ over the `P` pairs and
/// `d loss / d logp_policy[c] = ℓ'(x)·β/|c| / P`, `d loss / d logp_policy[r] = −ℓ'(x)·β/|r| / P`.
/// Metrics, means over pairs: `rewards/chosen` = β·logπ(c)/|c|, `rewards/rejected` likewise,
/// `rewards/margins` = their difference, `rewards/accuracies` = share of pairs whose chosen
/// reward is strictly larger. An empty batch gives loss 0, empty gradients and NaN ("not
/// defined") metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Simpo {
    /// β, the reward scale.
    pub beta: f64,
    /// γ/β: the target reward margin in units of β.
    pub gamma_beta_ratio: f64,
    /// ε, the assumed preference-label noise rate.
    pub label_smoothing: f64,
}

impl Simpo {
    /// Reads `beta`, `gamma_beta_ratio` and `label_smoothing` from `params`.
    ///
    /// # Errors
    /// `InvalidParams` for an unknown key, β ≤ 0, γ/β < 0 or ε outside [0, 0.5).
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let beta = params.f64_or("beta", 2.0)?;
        let gamma_beta_ratio = params.f64_or("gamma_beta_ratio", 0.5)?;
        let label_smoothing = params.f64_or("label_smoothing", 0.0)?;
        params.finish()?;
        let beta = check_positive("beta", beta)?;
        let gamma_beta_ratio = check_non_negative("gamma_beta_ratio", gamma_beta_ratio)?;
        if !(0.0..0.5).contains(&label_smoothing) {
            return Err(PluginError::invalid_params(format!(
                "`label_smoothing` = {label_smoothing} is outside [0, 0.5)"
            )));
        }
        Ok(Self {
            beta,
            gamma_beta_ratio,
            label_smoothing,
        })
    }

    /// γ = `gamma_beta_ratio`·β, the target reward margin.
    pub fn gamma(&self) -> f64 {
        self.gamma_beta_ratio * self.beta
    }
}

impl LossFunction for Simpo {
    fn spec(&self) -> LossSpec {
        SIMPO_SPEC
    }

    fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput, PluginError> {
        let pairs = paired::validated_pairs(batch, &SIMPO_SPEC, "simpo")?;
        // β·logπ(y)/|y|: the reference-free reward, per token.
        let reward =
            |i: usize| self.beta * f64::from(batch.logp_policy[i]) / f64::from(batch.n_tokens[i]);
        let mut grad = vec![0.0f32; batch.len()];
        let mut total = 0.0;
        let n_pairs = pairs.len() as f64;
        for &(c, r) in &pairs {
            let x = reward(c) - reward(r) - self.gamma();
            let (loss, slope) = pair_loss(self.label_smoothing, x);
            total += loss;
            grad[c] = (slope * self.beta / f64::from(batch.n_tokens[c]) / n_pairs) as f32;
            grad[r] = (-slope * self.beta / f64::from(batch.n_tokens[r]) / n_pairs) as f32;
        }
        let loss = if pairs.is_empty() {
            0.0
        } else {
            total / n_pairs
        };
        let metrics = paired::reward_metrics(&pairs, reward);
        Ok(LossOutput {
            loss,
            grad_logp_policy: grad.into(),
            grad_kl_logp_policy: Default::default(),
            metrics: metrics.into(),
        })
    }
}

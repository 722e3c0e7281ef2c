//! The DPO loss family over per-sequence log-probabilities.
//!
//! Fed by the host's [`LossBatch`] (summed answer log-probs under the policy and the reference
//! model, token counts, labels, partner indices); feeds back the mean loss over pairs, its
//! gradient with respect to every `logp_policy[i]`, and TRL's reward metrics.
//!
//! For a pair (chosen `c`, rejected `r`) the implicit-reward logit is
//!
//! ```text
//! h = (logπ(c) − logπ_ref(c)) − (logπ(r) − logπ_ref(r))
//! ```
//!
//! and the per-pair loss, as TRL's `DPOTrainer.dpo_loss` computes it (β = `beta`,
//! ε = `label_smoothing`), is
//!
//! | variant   | loss ℓ(h)                                               | source |
//! |-----------|---------------------------------------------------------|--------|
//! | `sigmoid` | −log σ(βh)                                              | Rafailov et al. 2023, eq. 7 |
//! | `cdpo`    | −(1−ε) log σ(βh) − ε log σ(−βh)                         | Mitchell 2023, "A note on DPO with noisy preferences" (TRL `sigmoid` with `label_smoothing`) |
//! | `robust`  | (−(1−ε) log σ(βh) + ε log σ(−βh)) / (1−2ε)              | Chowdhury et al. 2024, rDPO (TRL `robust`) |
//! | `hinge`   | relu(1 − βh)                                            | Zhao et al. 2023, SLiC (TRL `hinge`) |
//! | `ipo`     | (h − 1/(2β))², log-probs averaged per token             | Azar et al. 2023, eq. 17 (TRL `ipo`) |
//!
//! For `ipo`, TRL divides each sequence's log-probs by its token count before forming `h`
//! (`concatenated_forward`: `all_logps / loss_mask.sum(-1)`); so does this loss, for both the
//! policy and the reference. The batch loss is the mean of ℓ over pairs.

use fedpref_plugin_api::{
    check_positive,
    math::{log_sigmoid, mean, sigmoid},
    paired, DataNeeds, LossBatch, LossFunction, LossOutput, LossSpec, Metric, Params, PluginError,
};

/// What DPO asks of the host: (chosen, rejected) pairs and reference log-probs; no KL batch.
pub const DPO_SPEC: LossSpec = LossSpec {
    data: DataNeeds::Paired,
    needs_reference: true,
    needs_kl_batch: false,
};

/// Which member of the DPO family to use (the `variant` parameter, TRL's `loss_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpoVariant {
    /// `−log σ(βh)`: the original DPO loss.
    Sigmoid,
    /// `(−(1−ε) log σ(βh) + ε log σ(−βh)) / (1−2ε)`: unbiased under label-flip rate ε.
    Robust,
    /// `−(1−ε) log σ(βh) − ε log σ(−βh)`: conservative DPO (label smoothing).
    Cdpo,
    /// `relu(1 − βh)`: the SLiC hinge loss.
    Hinge,
    /// `(h − 1/(2β))²` over per-token average log-probs: IPO.
    Ipo,
}

impl DpoVariant {
    /// Every variant, in the order of [`DpoVariant::NAMES`].
    pub const ALL: [DpoVariant; 5] = [
        DpoVariant::Sigmoid,
        DpoVariant::Robust,
        DpoVariant::Cdpo,
        DpoVariant::Hinge,
        DpoVariant::Ipo,
    ];

    /// The names the `variant` parameter accepts.
    pub const NAMES: [&'static str; 5] = ["sigmoid", "robust", "cdpo", "hinge", "ipo"];

    /// The config name of this variant.
    pub fn as_str(self) -> &'static str {
        match self {
            DpoVariant::Sigmoid => "sigmoid",
            DpoVariant::Robust => "robust",
            DpoVariant::Cdpo => "cdpo",
            DpoVariant::Hinge => "hinge",
            DpoVariant::Ipo => "ipo",
        }
    }

    /// The variant called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// Whether the variant uses `label_smoothing`.
    pub fn uses_label_smoothing(self) -> bool {
        matches!(self, DpoVariant::Robust | DpoVariant::Cdpo)
    }

    /// Whether `h` is formed from per-token average log-probs instead of sums.
    pub fn averages_log_probs(self) -> bool {
        self == DpoVariant::Ipo
    }
}

/// The per-pair loss ℓ(h) and its slope dℓ/dh for logit `h` (see the module docs for the
/// formulas). Computed in `f64`; finite for every finite `h`.
///
/// The hinge's slope at the kink `βh = 1` is taken as 0, as `torch.relu`'s gradient at 0.
pub fn pair_loss(variant: DpoVariant, beta: f64, label_smoothing: f64, h: f64) -> (f64, f64) {
    let x = beta * h;
    let eps = label_smoothing;
    match variant {
        // d/dx −log σ(x) = −σ(−x).
        DpoVariant::Sigmoid => (-log_sigmoid(x), -beta * sigmoid(-x)),
        // d/dx −log σ(−x) = σ(x).
        DpoVariant::Cdpo => (
            -(1.0 - eps) * log_sigmoid(x) - eps * log_sigmoid(-x),
            beta * (-(1.0 - eps) * sigmoid(-x) + eps * sigmoid(x)),
        ),
        DpoVariant::Robust => (
            (-(1.0 - eps) * log_sigmoid(x) + eps * log_sigmoid(-x)) / (1.0 - 2.0 * eps),
            beta * (-(1.0 - eps) * sigmoid(-x) - eps * sigmoid(x)) / (1.0 - 2.0 * eps),
        ),
        DpoVariant::Hinge => {
            if 1.0 - x > 0.0 {
                (1.0 - x, -beta)
            } else {
                (0.0, 0.0)
            }
        }
        DpoVariant::Ipo => {
            let d = h - 1.0 / (2.0 * beta);
            (d * d, 2.0 * d)
        }
    }
}

/// The DPO loss with its parameters resolved.
///
/// Parameters (a JSON object): `variant` (one of [`DpoVariant::NAMES`], default `sigmoid`),
/// `beta` (β > 0, default 0.1), `label_smoothing` (ε in [0, 0.5), default 0; only `robust` and
/// `cdpo` use it, and a non-zero ε with another variant is an error rather than silently
/// ignored — TRL's `sigmoid` with label smoothing is `cdpo` here).
///
/// `evaluate` returns the mean of ℓ over pairs and, with `P` pairs and `s_i = 1` (or
/// `1 / n_tokens[i]` for `ipo`), `d loss / d logp_policy[c] = ℓ'(h)·s_c / P` and
/// `d loss / d logp_policy[r] = −ℓ'(h)·s_r / P`. Metrics, as TRL names them, all means over
/// pairs: `rewards/chosen` = β(logπ(c) − logπ_ref(c)), `rewards/rejected` likewise,
/// `rewards/margins` = their difference, `rewards/accuracies` = share of pairs whose chosen
/// reward is strictly larger, `logps/chosen` and `logps/rejected` = summed policy log-probs.
/// Rewards always use summed log-ratios, for `ipo` too, so they stay comparable across variants
/// (TRL's `ipo` reports them on the per-token averages it feeds the loss).
///
/// An empty batch gives loss 0, empty gradients and NaN ("not defined") metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Dpo {
    /// The variant.
    pub variant: DpoVariant,
    /// β, the inverse temperature of the implicit reward (IPO's τ).
    pub beta: f64,
    /// ε, the assumed preference-label noise rate (`robust`, `cdpo`).
    pub label_smoothing: f64,
}

impl Dpo {
    /// Reads `variant`, `beta` and `label_smoothing` from `params`.
    ///
    /// # Errors
    /// `InvalidParams` for an unknown key, an unknown variant (listing the allowed ones),
    /// β ≤ 0, ε outside [0, 0.5), or a non-zero ε with a variant that does not use it.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let name = params.choice("variant", &DpoVariant::NAMES, "sigmoid")?;
        // `choice` only returns one of NAMES.
        let variant = DpoVariant::from_name(name).unwrap_or(DpoVariant::Sigmoid);
        let beta = params.f64_or("beta", 0.1)?;
        let label_smoothing = params.f64_or("label_smoothing", 0.0)?;
        params.finish()?;
        let beta = check_positive("beta", beta)?;
        if !(0.0..0.5).contains(&label_smoothing) {
            return Err(PluginError::invalid_params(format!(
                "`label_smoothing` = {label_smoothing} is outside [0, 0.5)"
            )));
        }
        if label_smoothing != 0.0 && !variant.uses_label_smoothing() {
            return Err(PluginError::invalid_params(format!(
                "`label_smoothing` = {label_smoothing} has no effect with variant {:?}; use \"cdpo\" or \"robust\"",
                variant.as_str()
            )));
        }
        Ok(Self {
            variant,
            beta,
            label_smoothing,
        })
    }
}

impl LossFunction for Dpo {
    fn spec(&self) -> LossSpec {
        DPO_SPEC
    }

    fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput, PluginError> {
        let pairs = paired::validated_pairs(batch, &DPO_SPEC, "dpo")?;
        let mut grad = vec![0.0f32; batch.len()];
        if pairs.is_empty() {
            return Ok(output(0.0, grad, &[], self.beta, batch));
        }
        let scale = |i: usize| {
            if self.variant.averages_log_probs() {
                1.0 / f64::from(batch.n_tokens[i])
            } else {
                1.0
            }
        };
        let log_ratio = |i: usize| f64::from(batch.logp_policy[i]) - f64::from(batch.logp_ref[i]);
        let n_pairs = pairs.len() as f64;
        let mut total = 0.0;
        for &(c, r) in &pairs {
            let h = scale(c) * log_ratio(c) - scale(r) * log_ratio(r);
            let (loss, slope) = pair_loss(self.variant, self.beta, self.label_smoothing, h);
            total += loss;
            grad[c] = (slope * scale(c) / n_pairs) as f32;
            grad[r] = (-slope * scale(r) / n_pairs) as f32;
        }
        Ok(output(total / n_pairs, grad, &pairs, self.beta, batch))
    }
}

/// Packs the loss, gradient and TRL's reward metrics over `pairs`.
fn output(
    loss: f64,
    grad: Vec<f32>,
    pairs: &[(usize, usize)],
    beta: f64,
    batch: &LossBatch<'_>,
) -> LossOutput {
    let reward = |i: usize| beta * (f64::from(batch.logp_policy[i]) - f64::from(batch.logp_ref[i]));
    let logp = |i: usize| f64::from(batch.logp_policy[i]);
    let mut metrics = paired::reward_metrics(pairs, reward);
    metrics.extend([
        Metric::new("logps/chosen", mean(pairs.iter().map(|&(c, _)| logp(c)))),
        Metric::new("logps/rejected", mean(pairs.iter().map(|&(_, r)| logp(r)))),
    ]);
    LossOutput {
        loss,
        grad_logp_policy: grad.into(),
        grad_kl_logp_policy: Default::default(),
        metrics: metrics.into(),
    }
}

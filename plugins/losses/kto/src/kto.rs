//! The KTO loss over per-sequence log-probabilities (Ethayarajh et al. 2024, "KTO: Model
//! Alignment as Prospect Theoretic Optimization"; TRL `KTOTrainer.kto_loss`).
//!
//! Fed by the host's [`LossBatch`]: single labelled answers (summed log-probs under the policy
//! and the reference) plus a KL batch (each prompt with a mismatched answer). Feeds back the
//! mean loss over the batch, its gradient with respect to every `logp_policy[i]`, and TRL's
//! metrics.
//!
//! With `r_i = logπ(y_i) − logπ_ref(y_i)` and the reference point
//!
//! ```text
//! z0 = max(0, mean_j(kl_logp_policy[j] − kl_logp_ref[j]))      (0 when the KL batch is empty)
//! ```
//!
//! each sequence contributes
//!
//! ```text
//! desirable   (Label::Chosen):   L_i = λ_D · (1 − σ(β(r_i − z0)))
//! undesirable (Label::Rejected): L_i = λ_U · (1 − σ(β(z0 − r_i)))
//! ```
//!
//! and the loss is the mean of `L_i` over all `n` sequences of the batch (TRL concatenates the
//! weighted desirable and undesirable losses and takes their mean).
//!
//! `z0` is detached, as in TRL (`kl = (policy_KL_logps - reference_KL_logps).mean().detach()`)
//! and the paper, where it is a baseline estimated from a mismatched batch, not a quantity to
//! optimize: so `grad_kl_logp_policy` is returned empty and the host need not back-propagate
//! through the KL batch.

use fedpref_plugin_api::{
    check_positive, DataNeeds, Label, LossBatch, LossFunction, LossOutput, LossSpec, Metric,
    Params, PluginError,
};

use fedpref_plugin_api::math::{mean, sigmoid};

/// What `kto` asks of the host: single answers (pairs split inside each client), reference
/// log-probs and a KL batch.
pub const KTO_SPEC: LossSpec = LossSpec {
    data: DataNeeds::Unpaired,
    needs_reference: true,
    needs_kl_batch: true,
};

/// What `ktor` asks of the host: KTO's needs on data whose pairs the `redistribute` partition
/// broke across clients.
pub const KTOR_SPEC: LossSpec = LossSpec {
    data: DataNeeds::Redistributed,
    needs_reference: true,
    needs_kl_batch: true,
};

/// The weight λ_D of desirable examples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DesirableWeight {
    /// A fixed weight.
    Fixed(f64),
    /// `λ_D = n_U / n_D` over the client's training data (`LossBatch::client_desirable` and
    /// `client_undesirable`), so that its desirable and undesirable answers carry equal total
    /// weight (with λ_U = 1). This is what the paper's code does (`get_kto_training_args` in the
    /// authors' fork of OpenFedLLM counts the labels of the client's data for the round; TRL
    /// itself derives no weight, it only warns when the weights look unbalanced); counting each
    /// batch instead would make the weight jump from batch to batch. A client without both kinds
    /// falls back to `λ_D = 1`: with `n_D = 0` there is no desirable term to weight (the paper's
    /// code divides by zero), and with `n_U = 0` the ratio would be 0 and erase every term of
    /// the client (the paper's code lets it), so a client without contrast keeps unit weight.
    Auto,
}

impl DesirableWeight {
    /// λ_D for a client with `desirable` and `undesirable` answers.
    pub fn resolve(self, desirable: u64, undesirable: u64) -> f64 {
        match self {
            DesirableWeight::Fixed(w) => w,
            DesirableWeight::Auto if desirable == 0 || undesirable == 0 => 1.0,
            DesirableWeight::Auto => undesirable as f64 / desirable as f64,
        }
    }
}

/// The KTO loss with its parameters resolved.
///
/// Parameters (a JSON object): `beta` (β > 0, default 0.1), `desirable_weight` (λ_D > 0 or the
/// string `"auto"`, default 1), `undesirable_weight` (λ_U > 0, default 1).
///
/// `evaluate` returns the mean loss and, with `s(x) = σ(x)σ(−x)`,
/// `d loss / d logp_policy[i] = −λ_D β s(β(r_i − z0)) / n` for a desirable answer and
/// `+λ_U β s(β(z0 − r_i)) / n` for an undesirable one. Pairs (`pair[i] >= 0`) are allowed and
/// ignored: every sequence is a single answer. Metrics, as TRL names them: `rewards/chosen` and
/// `rewards/rejected` (mean β·r over desirable / undesirable answers), `rewards/margins` (their
/// difference), `kl` (z0), `count/chosen`, `count/rejected`, `logps/chosen`, `logps/rejected`
/// (mean summed policy log-probs). A mean over no answers is NaN ("not defined"); an empty
/// batch gives loss 0 and empty gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct Kto {
    /// β, the inverse temperature of the implied reward.
    pub beta: f64,
    /// λ_D.
    pub desirable_weight: DesirableWeight,
    /// λ_U.
    pub undesirable_weight: f64,
    /// `KTO_SPEC` or `KTOR_SPEC`: the same loss on differently partitioned data.
    pub spec: LossSpec,
}

impl Kto {
    /// Reads `beta`, `desirable_weight` and `undesirable_weight` from `params`; `spec` tells
    /// `kto` from `ktor`.
    ///
    /// # Errors
    /// `InvalidParams` for an unknown key, β ≤ 0, or a weight that is not a number > 0 (or
    /// `"auto"` for `desirable_weight`).
    pub fn from_params(params: &Params, spec: LossSpec) -> Result<Self, PluginError> {
        let beta = params.f64_or("beta", 0.1)?;
        let desirable_weight = match params.value("desirable_weight") {
            None => DesirableWeight::Fixed(1.0),
            Some(v) if v.as_str() == Some("auto") => DesirableWeight::Auto,
            Some(v) => match v.as_f64() {
                Some(w) => DesirableWeight::Fixed(check_positive("desirable_weight", w)?),
                None => {
                    return Err(PluginError::invalid_params(format!(
                        "`desirable_weight` must be a number > 0 or \"auto\", got {v}"
                    )))
                }
            },
        };
        let undesirable_weight = check_positive(
            "undesirable_weight",
            params.f64_or("undesirable_weight", 1.0)?,
        )?;
        params.finish()?;
        let beta = check_positive("beta", beta)?;
        Ok(Self {
            beta,
            desirable_weight,
            undesirable_weight,
            spec,
        })
    }
}

/// The detached reference point `z0 = max(0, mean(kl_policy − kl_ref))`, 0 for an empty KL batch.
pub fn reference_point(kl_policy: &[f32], kl_ref: &[f32]) -> f64 {
    let kl = mean(
        kl_policy
            .iter()
            .zip(kl_ref)
            .map(|(&p, &r)| f64::from(p) - f64::from(r)),
    );
    if kl.is_nan() {
        0.0
    } else {
        kl.max(0.0)
    }
}

/// One sequence's weighted loss `λ·(1 − σ(x))` and its slope with respect to `r`, where
/// `x = β(r − z0)` for a desirable answer and `β(z0 − r)` for an undesirable one.
/// `1 − σ(x)` is computed as `σ(−x)` and `σ'(x)` as `σ(x)σ(−x)`, exact for large |x|.
pub fn sequence_loss(label: Label, log_ratio: f64, z0: f64, beta: f64, weight: f64) -> (f64, f64) {
    match label {
        Label::Chosen => {
            let x = beta * (log_ratio - z0);
            (
                weight * sigmoid(-x),
                -weight * beta * sigmoid(x) * sigmoid(-x),
            )
        }
        Label::Rejected => {
            let x = beta * (z0 - log_ratio);
            (
                weight * sigmoid(-x),
                weight * beta * sigmoid(x) * sigmoid(-x),
            )
        }
    }
}

impl LossFunction for Kto {
    fn spec(&self) -> LossSpec {
        self.spec
    }

    fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput, PluginError> {
        batch.validate(&self.spec)?;
        batch.check_finite(&self.spec)?;
        let n = batch.len();
        let z0 = reference_point(&batch.kl_logp_policy, &batch.kl_logp_ref);
        let desirable: Vec<usize> = (0..n)
            .filter(|&i| batch.labels[i] == Label::Chosen)
            .collect();
        let undesirable: Vec<usize> = (0..n)
            .filter(|&i| batch.labels[i] == Label::Rejected)
            .collect();
        let lambda_d = self
            .desirable_weight
            .resolve(batch.client_desirable, batch.client_undesirable);

        let mut total = 0.0;
        let mut grad = Vec::with_capacity(n);
        for i in 0..n {
            let label = batch.labels[i];
            let weight = if label == Label::Chosen {
                lambda_d
            } else {
                self.undesirable_weight
            };
            let log_ratio = f64::from(batch.logp_policy[i]) - f64::from(batch.logp_ref[i]);
            let (loss, slope) = sequence_loss(label, log_ratio, z0, self.beta, weight);
            total += loss;
            grad.push((slope / n as f64) as f32);
        }
        let loss = if n == 0 { 0.0 } else { total / n as f64 };

        let reward = |&i: &usize| {
            self.beta * (f64::from(batch.logp_policy[i]) - f64::from(batch.logp_ref[i]))
        };
        let logp = |&i: &usize| f64::from(batch.logp_policy[i]);
        let chosen = mean(desirable.iter().map(reward));
        let rejected = mean(undesirable.iter().map(reward));
        let metrics = vec![
            Metric::new("rewards/chosen", chosen),
            Metric::new("rewards/rejected", rejected),
            Metric::new("rewards/margins", chosen - rejected),
            Metric::new("kl", z0),
            Metric::new("count/chosen", desirable.len() as f64),
            Metric::new("count/rejected", undesirable.len() as f64),
            Metric::new("logps/chosen", mean(desirable.iter().map(logp))),
            Metric::new("logps/rejected", mean(undesirable.iter().map(logp))),
        ];
        Ok(LossOutput {
            loss,
            grad_logp_policy: grad.into(),
            // Detached: see the module docs.
            grad_kl_logp_policy: Default::default(),
            metrics: metrics.into(),
        })
    }
}

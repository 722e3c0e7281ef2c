//! The `preference-accuracy` scorer: on held-out (chosen, rejected) pairs, the share whose
//! implicit reward margin `β · (lr_c − lr_r)` is positive, where `lr = log π(y|x) − log π_ref(y|x)`
//! (summed log-probs, nats) — TRL's `rewards/accuracies` and `rewards/margins` on an eval split.
//!
//! Fed by the host, which fills each item's features `logratio_chosen` and `logratio_rejected`;
//! reports `accuracy`, `mean_margin`, the mean rewards and `n`.

use abi_stable::std_types::RVec;
use fedpref_plugin_api::{
    check_range, math::mean, HostServicesRef, ItemScore, Metric, Outcome, Params, PluginError,
    ScoreItem, ScoreOutput, ScorerFunction, ScorerSpec,
};

/// Feature names the host fills.
pub const LOGRATIO_CHOSEN: &str = "logratio_chosen";
/// See [`LOGRATIO_CHOSEN`].
pub const LOGRATIO_REJECTED: &str = "logratio_rejected";

/// Held-out preference accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreferenceAccuracy {
    /// Reward scale β (default 0.1, as DPO's); it scales margins, not accuracy.
    pub beta: f64,
}

impl PreferenceAccuracy {
    /// Reads `beta` (default 0.1, in `(0, 100]`).
    ///
    /// # Errors
    /// `InvalidParams` for a value out of range or an unknown key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let beta = check_range(
            "beta",
            params.f64_or("beta", 0.1)?,
            f64::MIN_POSITIVE,
            100.0,
        )?;
        params.finish()?;
        Ok(Self { beta })
    }

    /// `(β·lr_c, β·lr_r)` of one item.
    ///
    /// # Errors
    /// A message naming the missing or non-finite feature.
    pub fn rewards(&self, item: &ScoreItem) -> Result<(f64, f64), String> {
        let get = |name: &str| match item.features.iter().find(|m| m.name.as_str() == name) {
            Some(m) if m.value.is_finite() => Ok(m.value),
            Some(m) => Err(format!("feature `{name}` is {}", m.value)),
            None => Err(format!("the host filled no feature `{name}`")),
        };
        Ok((
            self.beta * get(LOGRATIO_CHOSEN)?,
            self.beta * get(LOGRATIO_REJECTED)?,
        ))
    }
}

impl ScorerFunction for PreferenceAccuracy {
    fn spec(&self) -> ScorerSpec {
        ScorerSpec {
            needs_generation: false,
            needs_pair_logratios: true,
        }
    }

    fn score(
        &self,
        items: &[ScoreItem],
        _host: &HostServicesRef<'_>,
    ) -> Result<ScoreOutput, PluginError> {
        let mut scores = Vec::with_capacity(items.len());
        let mut rewards = Vec::new();
        for item in items {
            let (outcome, score, detail) = match self.rewards(item) {
                Ok((chosen, rejected)) => {
                    rewards.push((chosen, rejected));
                    let margin = chosen - rejected;
                    (
                        Outcome::Scored,
                        if margin > 0.0 { 1.0 } else { 0.0 },
                        format!("margin {margin}"),
                    )
                }
                Err(why) => (Outcome::Failed, f64::NAN, why),
            };
            scores.push(ItemScore {
                id: item.id.clone(),
                outcome,
                score,
                detail: detail.into(),
                scores: RVec::new(),
            });
        }
        let summary = vec![
            Metric::new(
                "accuracy",
                mean(
                    scores
                        .iter()
                        .filter(|s| s.outcome == Outcome::Scored)
                        .map(|s| s.score),
                ),
            ),
            Metric::new("mean_margin", mean(rewards.iter().map(|(c, r)| c - r))),
            Metric::new("mean_reward_chosen", mean(rewards.iter().map(|r| r.0))),
            Metric::new("mean_reward_rejected", mean(rewards.iter().map(|r| r.1))),
            Metric::new("n", rewards.len() as f64),
            Metric::new("failed", (items.len() - rewards.len()) as f64),
        ];
        Ok(ScoreOutput {
            items: scores.into(),
            summary: summary.into(),
        })
    }
}

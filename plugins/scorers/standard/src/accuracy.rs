//! The `preference-accuracy` scorer: on held-out (chosen, rejected) pairs, the share whose
//! implicit reward margin `β · (lr_c − lr_r)` is positive, where `lr = log π(y|x) − log π_ref(y|x)`
//! (summed log-probs, nats) — TRL's `rewards/accuracies` and `rewards/margins` on an eval split.
//!
//! A single answer labelled desirable or undesirable (KTO data) is scored as KTO reads it: its
//! implicit reward `β · lr` against the reference point, right when a desirable answer's reward
//! is above it and an undesirable one's below. Its margin is the reward signed by the label
//! (`+β·lr` desirable, `−β·lr` undesirable), so the two kinds share `accuracy` and
//! `mean_margin`. The reference point is 0, the reward of the model before training, not
//! KTO's batch estimate `z0` of KL(π‖π_ref): `z0` depends on which answers share a batch, and a
//! held-out score should not.
//!
//! Fed by the host, which fills each pair's features `logratio_chosen` and `logratio_rejected`,
//! and each single answer's `logratio` and `desirable` (1 or 0); reports `accuracy`,
//! `mean_margin`, the mean rewards (chosen or desirable, rejected or undesirable), `n`, `pairs`
//! and `singles`.

use abi_stable::std_types::RVec;
use fedpref_plugin_api::{
    check_range, math::mean, HostServicesRef, ItemScore, Metric, Outcome, Params, PluginError,
    ScoreItem, ScoreOutput, ScorerFunction, ScorerSpec,
};

/// Feature names the host fills.
pub const LOGRATIO_CHOSEN: &str = "logratio_chosen";
/// See [`LOGRATIO_CHOSEN`].
pub const LOGRATIO_REJECTED: &str = "logratio_rejected";
/// The log-ratio of a single labelled answer.
pub const LOGRATIO: &str = "logratio";
/// A single answer's label: 1 desirable, 0 undesirable.
pub const DESIRABLE: &str = "desirable";

/// The rewards of one held-out item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rewards {
    /// `(β·lr_chosen, β·lr_rejected)` of a pair.
    Pair(f64, f64),
    /// `β·lr` of a single answer, and its label.
    Single(f64, bool),
}

impl Rewards {
    /// How far the item is on the right side: the pair's reward margin, or the single
    /// answer's reward signed by its label. Positive is right.
    pub fn margin(self) -> f64 {
        match self {
            Rewards::Pair(chosen, rejected) => chosen - rejected,
            Rewards::Single(reward, true) => reward,
            // `0 − r`, not `−r`: an unchanged answer has margin 0, not −0.
            Rewards::Single(reward, false) => 0.0 - reward,
        }
    }

    /// The reward counted as chosen (a pair's chosen, a desirable answer), if any.
    fn chosen(self) -> Option<f64> {
        match self {
            Rewards::Pair(chosen, _) | Rewards::Single(chosen, true) => Some(chosen),
            Rewards::Single(_, false) => None,
        }
    }

    /// The reward counted as rejected (a pair's rejected, an undesirable answer), if any.
    fn rejected(self) -> Option<f64> {
        match self {
            Rewards::Pair(_, rejected) | Rewards::Single(rejected, false) => Some(rejected),
            Rewards::Single(_, true) => None,
        }
    }
}

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

    /// The rewards of one item: a pair when the host filled `logratio_chosen`, a single
    /// answer when it filled `logratio`.
    ///
    /// # Errors
    /// A message naming the missing or non-finite feature, or a label that is not 0 or 1.
    pub fn rewards(&self, item: &ScoreItem) -> Result<Rewards, String> {
        let find = |name: &str| item.features.iter().find(|m| m.name.as_str() == name);
        let get = |name: &str| match find(name) {
            Some(m) if m.value.is_finite() => Ok(m.value),
            Some(m) => Err(format!("feature `{name}` is {}", m.value)),
            None => Err(format!("the host filled no feature `{name}`")),
        };
        if find(LOGRATIO).is_some() {
            let desirable = match get(DESIRABLE)? {
                1.0 => true,
                0.0 => false,
                other => return Err(format!("feature `{DESIRABLE}` is {other}, not 1 or 0")),
            };
            return Ok(Rewards::Single(self.beta * get(LOGRATIO)?, desirable));
        }
        Ok(Rewards::Pair(
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
                Ok(item_rewards) => {
                    rewards.push(item_rewards);
                    let margin = item_rewards.margin();
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
            Metric::new("mean_margin", mean(rewards.iter().map(|r| r.margin()))),
            Metric::new(
                "mean_reward_chosen",
                mean(rewards.iter().filter_map(|r| r.chosen())),
            ),
            Metric::new(
                "mean_reward_rejected",
                mean(rewards.iter().filter_map(|r| r.rejected())),
            ),
            Metric::new("n", rewards.len() as f64),
            Metric::new(
                "pairs",
                rewards
                    .iter()
                    .filter(|r| matches!(r, Rewards::Pair(..)))
                    .count() as f64,
            ),
            Metric::new(
                "singles",
                rewards
                    .iter()
                    .filter(|r| matches!(r, Rewards::Single(..)))
                    .count() as f64,
            ),
            Metric::new("failed", (items.len() - rewards.len()) as f64),
        ];
        Ok(ScoreOutput {
            items: scores.into(),
            summary: summary.into(),
        })
    }
}

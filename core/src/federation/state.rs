//! What changes from round to round, and what a checkpoint restores: the global adapter, the
//! clients' kept optimizer states, the next round, the clip norm, what compressed links carry,
//! and the lengths of the metrics files at the last checkpoint (the aggregator's own state lives
//! in its plugin).

use std::collections::BTreeMap;

use super::{checkpoint, experiment::Experiment, SweepContext};
use crate::{train::OptimizerState, Error, Result};

/// The federation between rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationState {
    /// The global adapter, flat f32.
    pub global: Vec<f32>,
    /// Each client's AdamW moments, when `training.keep_optimizer_state` is set.
    pub optimizers: BTreeMap<u32, OptimizerState>,
    /// The round to run next (0-based).
    pub next_round: u32,
    /// The clip norm of client-level DP's next round: the configured one, or where adaptive
    /// clipping has taken it.
    pub clip_norm: f64,
    /// What compressed links carry from round to round.
    pub links: LinkState,
    /// Byte lengths of `metrics/steps.jsonl` and `metrics/rounds.jsonl` at the last checkpoint:
    /// rows past them belong to an unfinished round and are cut on resume.
    pub metrics_lengths: (u64, u64),
}

/// What compressed communication carries from round to round (`crate::compression`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkState {
    /// Each client's error-feedback residual (biased uplink codecs).
    pub residuals: BTreeMap<u32, Vec<f32>>,
    /// The model the clients hold, x̂, under downlink compression.
    pub public: Option<Vec<f32>>,
    /// Bytes of each round's broadcast so far (downlink compression).
    pub broadcasts: Vec<u64>,
    /// Each client's first broadcast not yet received (downlink compression).
    pub synced: BTreeMap<u32, u32>,
}

impl FederationState {
    /// The state before round 0: the experiment's initial adapter.
    pub fn start(experiment: &Experiment) -> Self {
        Self {
            global: experiment.initial.clone(),
            optimizers: BTreeMap::new(),
            next_round: 0,
            clip_norm: experiment.plan.config.privacy.clip_norm,
            links: LinkState {
                public: experiment
                    .plan
                    .config
                    .compression
                    .downlink_codec()
                    .map(|_| experiment.initial.clone()),
                ..LinkState::default()
            },
            metrics_lengths: (0, 0),
        }
    }

    /// The state after the newest checkpoint of the run directory (loading the aggregator's
    /// state into its plugin), or [`Self::start`] when there is none.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] for a checkpoint of another adapter size; I/O and plugin errors.
    pub fn resume(experiment: &mut Experiment, ctx: &SweepContext<'_>) -> Result<Self> {
        let Some(dir) = experiment.dir.latest_checkpoint()? else {
            return Ok(Self::start(experiment));
        };
        let restored = checkpoint::read(&dir)?;
        if restored.global.len() != experiment.n_params() {
            return Err(Error::Checkpoint {
                path: dir,
                message: format!(
                    "{} parameters, this config's adapter has {}",
                    restored.global.len(),
                    experiment.n_params()
                ),
            });
        }
        experiment.aggregator.load_state(&restored.aggregator)?;
        ctx.progress.note(&format!(
            "{}: resuming after round {}",
            experiment.name, restored.state.round
        ));
        Ok(Self {
            global: restored.global,
            optimizers: restored.optimizers,
            next_round: restored.state.round + 1,
            clip_norm: restored
                .state
                .clip_norm
                .unwrap_or(experiment.plan.config.privacy.clip_norm),
            links: LinkState {
                residuals: restored.links.0,
                public: restored.links.1,
                broadcasts: restored.state.broadcasts,
                synced: restored.state.synced,
            },
            metrics_lengths: (restored.state.steps_len, restored.state.rounds_len),
        })
    }
}

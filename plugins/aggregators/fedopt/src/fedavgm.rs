//! FedAvgM: FedAvg with server momentum over the averaged client delta.

use fedpref_plugin_api::{
    check_positive,
    state::{StateReader, StateWriter},
    AggregationInput, AggregationOutput, AggregatorFunction, Metric, Params, PluginError,
};

use crate::{
    options::{decay, Variant, Weighting},
    round,
};

/// FedAvg with server momentum (Hsu, Qi and Brown 2019, "Measuring the Effects of Non-Identical
/// Data Distribution for Federated Visual Classification", Section 3; in the ascent form of
/// Reddi et al. 2021):
///
/// ```text
/// Δ_t = Σ_{i∈S_t} p_i (y_i − w_t),   p_i = n_i / Σ_j n_j
/// v_t = β v_{t−1} + Δ_t,             v_{−1} = 0
/// w_{t+1} = w_t + η v_t
/// ```
///
/// `variant = "openfedllm"` follows OpenFedLLM's `fed_global.py` instead, a dampened momentum
/// whose first step is the plain delta:
///
/// ```text
/// v_t = Δ_t                          on the first aggregation (OpenFedLLM: round_idx == 0)
/// v_t = β v_{t−1} + (1 − β) Δ_t      afterwards
/// w_{t+1} = w_t + η v_t              (OpenFedLLM has no η, i.e. η = 1)
/// ```
///
/// "First aggregation" counts this instance's aggregations (kept in the state), so a run
/// resumed from a checkpoint continues correctly.
///
/// Parameters: `momentum` β in `[0, 1)` (default 0.9; 0.5 with `variant = "openfedllm"`, the
/// `fedopt_beta1` default of the authors' fork of OpenFedLLM that the study ran, where upstream
/// OpenFedLLM has 0.9), `server_lr` η > 0 (default 1.0), `variant` (`published` |
/// `openfedllm`), `weighting` (`examples` (default) | `uniform`).
///
/// State: `steps` (u64), `v` (f32 vector, empty before the first round).
#[derive(Debug, Clone, PartialEq)]
pub struct FedAvgM {
    /// Server learning rate η.
    pub server_lr: f64,
    /// Momentum β.
    pub momentum: f64,
    /// Published or OpenFedLLM formulas.
    pub variant: Variant,
    /// How client deltas are weighted.
    pub weighting: Weighting,
    velocity: Vec<f32>,
    steps: u64,
}

impl FedAvgM {
    const NAME: &'static str = "fedavgm";

    /// Reads the parameters; the state starts empty.
    ///
    /// # Errors
    /// `InvalidParams` for a value out of range or an unknown key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let variant = Variant::read(params)?;
        let momentum = decay(params, "momentum", variant.default_momentum())?;
        let server_lr = check_positive("server_lr", params.f64_or("server_lr", 1.0)?)?;
        let weighting = Weighting::read(params, Weighting::Examples)?;
        params.finish()?;
        Ok(Self {
            server_lr,
            momentum,
            variant,
            weighting,
            velocity: Vec::new(),
            steps: 0,
        })
    }

    /// The momentum buffer `v` (empty before the first round).
    pub fn velocity(&self) -> &[f32] {
        &self.velocity
    }
}

impl AggregatorFunction for FedAvgM {
    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> Result<AggregationOutput, PluginError> {
        input.validate(Self::NAME)?;
        let n = input.global.len();
        round::check_state_len(Self::NAME, "momentum buffer", &self.velocity, n)?;
        let updates = input.updates.as_slice();
        let p = round::weights(Self::NAME, updates, self.weighting)?;
        let delta = round::mean_delta(&input.global, updates, &p);
        let beta = self.momentum;
        let first = self.steps == 0 || self.velocity.is_empty();
        let velocity: Vec<f64> = delta
            .iter()
            .enumerate()
            .map(|(j, &d)| {
                let v_prev = self.velocity.get(j).map_or(0.0, |&v| f64::from(v));
                match self.variant {
                    Variant::Published => beta * v_prev + d,
                    Variant::OpenFedLlm if first => d,
                    Variant::OpenFedLlm => beta * v_prev + (1.0 - beta) * d,
                }
            })
            .collect();
        let global = round::finish_global(
            Self::NAME,
            input
                .global
                .iter()
                .zip(&velocity)
                .map(|(&w, &v)| f64::from(w) + self.server_lr * v),
        )?;
        let velocity: Vec<f32> = velocity.into_iter().map(|v| v as f32).collect();
        round::finite(Self::NAME, "momentum entry", &velocity)?;
        let mut metrics = input.base_metrics(&global);
        metrics.push(Metric::new("momentum_norm", round::norm(&velocity)));
        self.velocity = velocity;
        self.steps += 1;
        Ok(AggregationOutput {
            global: global.into(),
            metrics: metrics.into(),
        })
    }

    fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        let mut w = StateWriter::new(Self::NAME);
        w.u64(self.steps);
        w.f32s(&self.velocity);
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), PluginError> {
        let mut r = StateReader::new(state, Self::NAME)?;
        let steps = r.u64("steps")?;
        let velocity = r.f32s("momentum buffer")?;
        r.finish()?;
        self.steps = steps;
        self.velocity = velocity;
        Ok(())
    }
}

//! FedAdagrad, FedYogi and FedAdam: adaptive server optimizers over the averaged client delta,
//! one struct ([`FedAdaptive`]) with the second-moment rule chosen by [`Adaptivity`].

use fedpref_plugin_api::{
    check_positive,
    state::{StateReader, StateWriter},
    AggregationInput, AggregationOutput, AggregatorFunction, Metric, Params, PluginError,
};

use crate::{
    options::{decay, Variant, Weighting},
    round,
};

/// Which second-moment update a [`FedAdaptive`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adaptivity {
    /// `v_t = v_{t−1} + Δ_t²`.
    Adagrad,
    /// `v_t = v_{t−1} − (1 − β2) Δ_t² sign(v_{t−1} − Δ_t²)`.
    Yogi,
    /// `v_t = β2 v_{t−1} + (1 − β2) Δ_t²`.
    Adam,
}

impl Adaptivity {
    /// The component name: `fedadagrad`, `fedyogi` or `fedadam`.
    pub fn name(self) -> &'static str {
        match self {
            Adaptivity::Adagrad => "fedadagrad",
            Adaptivity::Yogi => "fedyogi",
            Adaptivity::Adam => "fedadam",
        }
    }
}

/// `sign(x)` with `sign(0) = 0`, as the Yogi update (and `torch.sign`) defines it; `f64::signum`
/// would give 1 at 0.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Adaptive federated optimization (Reddi et al. 2021, "Adaptive Federated Optimization",
/// ICLR, Algorithm 2), elementwise over the flat parameter vector:
///
/// ```text
/// Δ_t = Σ_{i∈S_t} p_i (y_i − w_t)
/// m_t = β1 m_{t−1} + (1 − β1) Δ_t                                  m_{−1} = 0
/// v_t = v_{t−1} + Δ_t²                                  (FedAdagrad)
/// v_t = v_{t−1} − (1 − β2) Δ_t² sign(v_{t−1} − Δ_t²)    (FedYogi)    v_{−1} = τ²
/// v_t = β2 v_{t−1} + (1 − β2) Δ_t²                      (FedAdam)
/// w_{t+1} = w_t + η m_t / (√v_t + τ)
/// ```
///
/// No bias correction (the paper has none). `v_{−1} = τ²` is the smallest start the paper
/// allows (`v_{−1} ≥ τ²`); `sign(0) = 0`. `p_i = n_i / Σ n_j` by default (`weighting =
/// "examples"`, FedAvg's weights); Algorithm 2 as printed averages uniformly, which is
/// `weighting = "uniform"`.
///
/// `variant = "openfedllm"` follows OpenFedLLM's `federated_learning/fed_global.py`
/// (`global_aggregate`), which the reproduced study ran. It differs in four places:
///
/// ```text
/// Δ_t = (1/|S_t|) Σ_{i∈S_t} (y_i − w_t)             uniform mean (default weighting "uniform")
/// m_t = Δ_t                                          on the first aggregation (round_idx == 0)
/// m_t = β1 m_{t−1} + (1 − β1) Δ_t                    afterwards (FedYogi, FedAdam)
/// m_t = Δ_t                                          always (FedAdagrad: no momentum)
/// v_t = v_{t−1} + m_t²                               (FedAdagrad)
/// v_t = v_{t−1} − (1 − β2) m_t² sign(v_{t−1} − m_t²) (FedYogi)     m_t² where the paper has Δ_t²
/// v_t = β2 v_{t−1} + (1 − β2) m_t²                   (FedAdam)
/// w_{t+1} = w_t + η m_t / (√v_t + τ)                 v_{−1} = τ²
/// ```
///
/// "First aggregation" counts this instance's aggregations (kept in the state).
///
/// Parameters (defaults): `server_lr` η > 0 (1e-3), `tau` τ > 0 (1e-3), `beta1` β1 in `[0, 1)`
/// (0.9, and 0.5 with `variant = "openfedllm"`; FedAdagrad 0, the paper's FedAdagrad has no
/// momentum, and with `variant = "openfedllm"` it must stay 0), `beta2` β2 in `[0, 1)` (0.99;
/// FedYogi and FedAdam only), `variant` (`published` | `openfedllm`), `weighting` (`examples` |
/// `uniform`). η and τ are OpenFedLLM's `fedopt_eta`/`fedopt_tau` defaults; β1 is the paper's
/// 0.9, or 0.5, the `fedopt_beta1` default of the authors' fork of OpenFedLLM that the study
/// ran (upstream OpenFedLLM has 0.9); β2 the paper's and OpenFedLLM's.
///
/// State: `steps` (u64), `m`, `v` (f32 vectors, empty before the first round).
#[derive(Debug, Clone, PartialEq)]
pub struct FedAdaptive {
    /// Which second-moment rule.
    pub adaptivity: Adaptivity,
    /// Server learning rate η.
    pub server_lr: f64,
    /// First-moment decay β1.
    pub beta1: f64,
    /// Second-moment decay β2 (unused by FedAdagrad).
    pub beta2: f64,
    /// Adaptivity τ.
    pub tau: f64,
    /// Published or OpenFedLLM formulas.
    pub variant: Variant,
    /// How client deltas are weighted.
    pub weighting: Weighting,
    m: Vec<f32>,
    v: Vec<f32>,
    steps: u64,
}

impl FedAdaptive {
    /// Reads the parameters of the `adaptivity` rule; the state starts empty.
    ///
    /// # Errors
    /// `InvalidParams` for a value out of range, `beta1` != 0 for OpenFedLLM's FedAdagrad, or
    /// an unknown key (FedAdagrad has no `beta2`).
    pub fn from_params(adaptivity: Adaptivity, params: &Params) -> Result<Self, PluginError> {
        let server_lr = check_positive("server_lr", params.f64_or("server_lr", 1e-3)?)?;
        let tau = check_positive("tau", params.f64_or("tau", 1e-3)?)?;
        let variant = Variant::read(params)?;
        let (beta1, beta2) = match adaptivity {
            Adaptivity::Adagrad => (decay(params, "beta1", 0.0)?, 0.0),
            Adaptivity::Yogi | Adaptivity::Adam => (
                decay(params, "beta1", variant.default_momentum())?,
                decay(params, "beta2", 0.99)?,
            ),
        };
        let default_weighting = match variant {
            Variant::Published => Weighting::Examples,
            Variant::OpenFedLlm => Weighting::Uniform,
        };
        let weighting = Weighting::read(params, default_weighting)?;
        params.finish()?;
        if adaptivity == Adaptivity::Adagrad && variant == Variant::OpenFedLlm && beta1 != 0.0 {
            return Err(PluginError::invalid_params(format!(
                "`beta1` = {beta1} has no effect with variant \"openfedllm\": OpenFedLLM's fedadagrad uses no momentum (leave beta1 at 0)"
            )));
        }
        Ok(Self {
            adaptivity,
            server_lr,
            beta1,
            beta2,
            tau,
            variant,
            weighting,
            m: Vec::new(),
            v: Vec::new(),
            steps: 0,
        })
    }

    /// The first moment `m` (empty before the first round).
    pub fn first_moment(&self) -> &[f32] {
        &self.m
    }

    /// The second moment `v` (empty before the first round).
    pub fn second_moment(&self) -> &[f32] {
        &self.v
    }

    /// One coordinate's `(m_t, v_t)` from `(m_{t−1}, v_{t−1})` and `Δ_t`.
    fn moments(&self, first: bool, m_prev: f64, v_prev: f64, delta: f64) -> (f64, f64) {
        let (b1, b2) = (self.beta1, self.beta2);
        let m = match (self.variant, self.adaptivity) {
            (Variant::Published, _) => b1 * m_prev + (1.0 - b1) * delta,
            (Variant::OpenFedLlm, Adaptivity::Adagrad) => delta,
            (Variant::OpenFedLlm, _) if first => delta,
            (Variant::OpenFedLlm, _) => b1 * m_prev + (1.0 - b1) * delta,
        };
        // The published rules square Δ_t; OpenFedLLM squares m_t.
        let square = match self.variant {
            Variant::Published => delta * delta,
            Variant::OpenFedLlm => m * m,
        };
        let v = match self.adaptivity {
            Adaptivity::Adagrad => v_prev + square,
            Adaptivity::Yogi => v_prev - (1.0 - b2) * square * sign(v_prev - square),
            Adaptivity::Adam => b2 * v_prev + (1.0 - b2) * square,
        };
        (m, v)
    }
}

impl AggregatorFunction for FedAdaptive {
    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> Result<AggregationOutput, PluginError> {
        let name = self.adaptivity.name();
        input.validate(name)?;
        let n = input.global.len();
        round::check_state_len(name, "first moment", &self.m, n)?;
        round::check_state_len(name, "second moment", &self.v, n)?;
        let updates = input.updates.as_slice();
        let p = round::weights(name, updates, self.weighting)?;
        let delta = round::mean_delta(&input.global, updates, &p);
        let first = self.steps == 0 || self.m.is_empty();
        let v_init = self.tau * self.tau;
        let mut m_new = Vec::with_capacity(n);
        let mut v_new = Vec::with_capacity(n);
        let mut step = Vec::with_capacity(n);
        for (j, &d) in delta.iter().enumerate() {
            let m_prev = self.m.get(j).map_or(0.0, |&x| f64::from(x));
            let v_prev = self.v.get(j).map_or(v_init, |&x| f64::from(x));
            let (m, v) = self.moments(first, m_prev, v_prev, d);
            // v >= 0 for every rule (Yogi moves v towards Δ² by at most (1 − β2) Δ²), and τ > 0,
            // so the denominator is >= τ > 0.
            step.push(self.server_lr * m / (v.max(0.0).sqrt() + self.tau));
            m_new.push(m as f32);
            v_new.push(v as f32);
        }
        let global = round::finish_global(
            name,
            input
                .global
                .iter()
                .zip(&step)
                .map(|(&w, &s)| f64::from(w) + s),
        )?;
        round::finite(name, "first moment entry", &m_new)?;
        round::finite(name, "second moment entry", &v_new)?;
        let mut metrics = input.base_metrics(&global);
        metrics.push(Metric::new(
            "delta_norm",
            delta.iter().map(|d| d * d).sum::<f64>().sqrt(),
        ));
        self.m = m_new;
        self.v = v_new;
        self.steps += 1;
        Ok(AggregationOutput {
            global: global.into(),
            metrics: metrics.into(),
        })
    }

    fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        let mut w = StateWriter::new(self.adaptivity.name());
        w.u64(self.steps);
        w.f32s(&self.m);
        w.f32s(&self.v);
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), PluginError> {
        let mut r = StateReader::new(state, self.adaptivity.name())?;
        let steps = r.u64("steps")?;
        let m = r.f32s("first moment")?;
        let v = r.f32s("second moment")?;
        r.finish()?;
        if m.len() != v.len() {
            return Err(PluginError::invalid_input(format!(
                "{}: the state's moments differ in length ({} and {})",
                self.adaptivity.name(),
                m.len(),
                v.len()
            )));
        }
        self.steps = steps;
        self.m = m;
        self.v = v;
        Ok(())
    }
}

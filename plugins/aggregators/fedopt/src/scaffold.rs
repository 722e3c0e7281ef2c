//! SCAFFOLD: control variates that correct the client drift of local training.

use std::collections::BTreeMap;

use fedpref_plugin_api::{
    check_positive,
    state::{StateReader, StateWriter},
    AggregationInput, AggregationOutput, AggregatorFunction, ClientPlan, Metric, Params,
    PluginError,
};

use crate::{
    options::{Variant, Weighting},
    round,
};

/// Where local training applies SCAFFOLD's correction `c − c_i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    /// `w ← w − η_l (c − c_i)` after every optimizer step (OpenFedLLM).
    Weights,
    /// `grad ← grad + c − c_i` before clipping and the optimizer (the published form, for SGD).
    Gradient,
}

impl Correction {
    /// The accepted values of `correction`.
    pub const NAMES: [&'static str; 2] = ["weights", "gradient"];

    fn read(params: &Params) -> Result<Self, PluginError> {
        Ok(
            match params.choice("correction", &Self::NAMES, "weights")? {
                "gradient" => Correction::Gradient,
                _ => Correction::Weights,
            },
        )
    }

    /// The plan applying `offset` this way.
    fn plan(self, offset: Vec<f32>) -> ClientPlan {
        match self {
            Correction::Weights => ClientPlan {
                weight_offset: offset.into(),
                ..ClientPlan::plain()
            },
            Correction::Gradient => ClientPlan {
                gradient_offset: offset.into(),
                ..ClientPlan::plain()
            },
        }
    }
}

/// SCAFFOLD (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated
/// Learning", ICML, Algorithm 1 with option II).
///
/// The server keeps a control variate `c` and one `c_i` per client `i ∈ 0..N` (`N` =
/// `n_clients`, all zero at first, allocated when a client first trains). Before local
/// training, [`client_plan`](AggregatorFunction::client_plan) asks the host to apply the
/// correction `c − c_i` at every local step with learning rate `η_l`, by default after the
/// optimizer step, as OpenFedLLM's `SCAFFOLD_Callback.on_step_end` does (`fed_local_sft.py`,
/// reused by its DPO and KTO trainers):
///
/// ```text
/// w ← AdamW(w, grad);  w ← w − η_l (c − c_i)           (correction = "weights", weight_offset)
/// grad ← grad + c − c_i;  w ← AdamW(w, grad)           (correction = "gradient", gradient_offset)
/// ```
///
/// Karimireddy et al. write the local step for SGD, `y ← y − η_l (g − c_i + c)`, where the two
/// forms are the same update. With AdamW they differ: through the gradient, the correction is
/// clipped with it and divided by Adam's `√v̂`, which normalizes it to roughly `η_l` per
/// coordinate whatever its size; after the step it moves the weights by exactly `η_l (c − c_i)`.
/// `"gradient"` is kept as the published algorithm's form.
///
/// After the round, with `w_t` the global parameters the clients started from, `y_i` client
/// `i`'s parameters, `K_i` its local steps and `η_l` its local learning rate:
///
/// ```text
/// c_i⁺ = c_i − c + (w_t − y_i) / (K_i η_l)               (option II)
/// Δc_i = c_i⁺ − c_i,   c_i ← c_i⁺
/// w_{t+1} = w_t + η_g Σ_{i∈S_t} p_i (y_i − w_t)          p_i = 1/|S_t|
/// c ← c + (1/N) Σ_{i∈S_t} Δc_i
/// ```
///
/// `variant = "openfedllm"` follows OpenFedLLM (`fed_global.py`, `fed_local_sft.py`): the same
/// control-variate updates (its `get_auxiliary_param` computes `c_i⁺ = (w_t − y_i)/(K η_l) −
/// (c − c_i)` with `K = max_steps`) but the server average is weighted by examples,
/// `p_i = n_i / Σ_j n_j`, i.e. `w_{t+1} = Σ p_i y_i` at η_g = 1.
///
/// Parameters: `server_lr` η_g > 0 (default 1.0), `variant` (`published` | `openfedllm`),
/// `weighting` (default `uniform` for `published`, `examples` for `openfedllm`), `correction`
/// (`weights` (default) | `gradient`).
///
/// Every update must report `local_steps` K_i > 0 and a finite `learning_rate` η_l > 0;
/// `n_clients` must not change between rounds.
///
/// State: `n_clients` (u64, 0 before the first round), `c` (f32 vector, empty before the first
/// round), the number `k` of clients that have trained (u64), then `k` pairs of client index
/// (u64, ascending) and `c_i` (f32 vector); every other client's `c_i` is zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaffold {
    /// Server learning rate η_g.
    pub server_lr: f64,
    /// Published or OpenFedLLM formulas.
    pub variant: Variant,
    /// How client deltas are weighted.
    pub weighting: Weighting,
    /// Where local training applies `c − c_i`.
    pub correction: Correction,
    n_clients: u64,
    control: Vec<f32>,
    /// `c_i` of every client that has trained; absent means zero.
    client_controls: BTreeMap<u32, Vec<f32>>,
}

impl Scaffold {
    const NAME: &'static str = "scaffold";

    /// Reads the parameters; all control variates start at zero.
    ///
    /// # Errors
    /// `InvalidParams` for a value out of range or an unknown key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let server_lr = check_positive("server_lr", params.f64_or("server_lr", 1.0)?)?;
        let variant = Variant::read(params)?;
        let default_weighting = match variant {
            Variant::Published => Weighting::Uniform,
            Variant::OpenFedLlm => Weighting::Examples,
        };
        let weighting = Weighting::read(params, default_weighting)?;
        let correction = Correction::read(params)?;
        params.finish()?;
        Ok(Self {
            server_lr,
            variant,
            weighting,
            correction,
            n_clients: 0,
            control: Vec::new(),
            client_controls: BTreeMap::new(),
        })
    }

    /// The server control variate `c` (empty = zero, before the first round).
    pub fn control(&self) -> &[f32] {
        &self.control
    }

    /// Client `client`'s control variate `c_i` (empty = zero, the client never trained).
    pub fn client_control(&self, client: u32) -> &[f32] {
        self.client_controls.get(&client).map_or(&[], Vec::as_slice)
    }

    fn check_client(&self, client: u32) -> Result<(), PluginError> {
        if self.n_clients > 0 && u64::from(client) >= self.n_clients {
            return Err(PluginError::invalid_input(format!(
                "scaffold: client index {client} is out of range for a federation of {} clients",
                self.n_clients
            )));
        }
        Ok(())
    }
}

impl AggregatorFunction for Scaffold {
    fn client_plan(&self, client: u32, global: &[f32]) -> Result<ClientPlan, PluginError> {
        self.check_client(client)?;
        if self.control.is_empty() {
            // Before the first round every control variate is zero: nothing to add.
            return Ok(ClientPlan::plain());
        }
        round::check_state_len(Self::NAME, "control variate", &self.control, global.len())?;
        let own = self.client_control(client);
        let offset: Vec<f32> = if own.is_empty() {
            self.control.clone()
        } else {
            self.control
                .iter()
                .zip(own)
                .map(|(&c, &ci)| c - ci)
                .collect()
        };
        Ok(self.correction.plan(offset))
    }

    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> Result<AggregationOutput, PluginError> {
        input.validate(Self::NAME)?;
        let n_clients = u64::from(input.n_clients);
        if self.n_clients > 0 && self.n_clients != n_clients {
            return Err(PluginError::invalid_input(format!(
                "scaffold: the federation had {} clients and now has {n_clients}; the control variates cannot follow",
                self.n_clients
            )));
        }
        let n = input.global.len();
        round::check_state_len(Self::NAME, "control variate", &self.control, n)?;
        let updates = input.updates.as_slice();
        for update in updates {
            let lr = update.learning_rate;
            if update.local_steps == 0 || !(lr.is_finite() && lr > 0.0) {
                return Err(PluginError::invalid_input(format!(
                    "scaffold: client {} reported local_steps = {} and learning_rate = {lr}; option II needs K > 0 and a finite η_l > 0",
                    update.client, update.local_steps
                )));
            }
        }
        let p = round::weights(Self::NAME, updates, self.weighting)?;
        let delta = round::mean_delta(&input.global, updates, &p);
        let global = round::finish_global(
            Self::NAME,
            input
                .global
                .iter()
                .zip(&delta)
                .map(|(&w, &d)| f64::from(w) + self.server_lr * d),
        )?;

        let control_prev: Vec<f64> = if self.control.is_empty() {
            vec![0.0; n]
        } else {
            self.control.iter().map(|&c| f64::from(c)).collect()
        };
        let mut control_sum = vec![0f64; n];
        let mut new_client_controls = Vec::with_capacity(updates.len());
        for update in updates {
            let own = self.client_control(update.client);
            let scale = 1.0 / (f64::from(update.local_steps) * f64::from(update.learning_rate));
            let mut new_own = Vec::with_capacity(n);
            for j in 0..n {
                let ci = own.get(j).map_or(0.0, |&x| f64::from(x));
                let ci_new = ci - control_prev[j]
                    + (f64::from(input.global[j]) - f64::from(update.params[j])) * scale;
                control_sum[j] += ci_new - ci;
                new_own.push(ci_new as f32);
            }
            round::finite(
                Self::NAME,
                &format!("client {} control entry", update.client),
                &new_own,
            )?;
            new_client_controls.push((update.client, new_own));
        }
        let control: Vec<f32> = control_prev
            .iter()
            .zip(&control_sum)
            .map(|(&c, &s)| (c + s / n_clients as f64) as f32)
            .collect();
        round::finite(Self::NAME, "server control entry", &control)?;

        let mut metrics = input.base_metrics(&global);
        metrics.push(Metric::new("control_norm", round::norm(&control)));
        self.n_clients = n_clients;
        self.control = control;
        self.client_controls.extend(new_client_controls);
        Ok(AggregationOutput {
            global: global.into(),
            metrics: metrics.into(),
        })
    }

    fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        let mut w = StateWriter::new(Self::NAME);
        w.u64(self.n_clients);
        w.f32s(&self.control);
        w.u64(self.client_controls.len() as u64);
        for (&client, own) in &self.client_controls {
            w.u64(u64::from(client));
            w.f32s(own);
        }
        Ok(w.finish())
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), PluginError> {
        let mut r = StateReader::new(state, Self::NAME)?;
        let n_clients = r.u64("n_clients")?;
        if n_clients > u64::from(u32::MAX) {
            return Err(PluginError::invalid_input(format!(
                "scaffold: the state's n_clients = {n_clients} does not fit a u32 client index"
            )));
        }
        let control = r.f32s("server control variate")?;
        let trained = r.u64("number of trained clients")?;
        let mut client_controls = BTreeMap::new();
        // Each entry takes at least 16 bytes, so a corrupt count fails on reading, not allocating.
        for _ in 0..trained {
            let client = r.u64("client index")?;
            let own = r.f32s("client control variate")?;
            let bad = if client >= n_clients {
                Some(format!("is out of range for {n_clients} clients"))
            } else if own.len() != control.len() {
                Some(format!(
                    "holds {} values, the server's {}",
                    own.len(),
                    control.len()
                ))
            } else if client_controls.contains_key(&(client as u32)) {
                Some("appears twice".to_owned())
            } else {
                None
            };
            if let Some(bad) = bad {
                return Err(PluginError::invalid_input(format!(
                    "scaffold: the state's control variate of client {client} {bad}"
                )));
            }
            client_controls.insert(client as u32, own);
        }
        r.finish()?;
        self.n_clients = n_clients;
        self.control = control;
        self.client_controls = client_controls;
        Ok(())
    }
}

//! Krum and Multi-Krum: keep the client(s) whose parameters lie closest to their neighbours.

use fedpref_plugin_api::{
    state, AggregationInput, AggregationOutput, AggregatorFunction, Metric, Params, PluginError,
};

use crate::round;

/// Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui and Stainer 2017, "Machine Learning
/// with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS).
///
/// With `m` client vectors `y_i` of which at most `f` are faulty, and `i → j` meaning `y_j` is
/// one of the `m − f − 2` vectors closest to `y_i` (squared Euclidean distance, `j ≠ i`):
///
/// ```text
/// score(i) = Σ_{i → j} ‖y_i − y_j‖²
/// Krum:       w_{t+1} = y_{i*},  i* = argmin_i score(i)           (ties: lowest client index)
/// Multi-Krum: w_{t+1} = (1/k) Σ_{i ∈ K} y_i,  K = the k clients of lowest score
/// ```
///
/// Requires `m > 2f + 2`. Unweighted (a faulty client could claim any example count). Over the
/// parameters `y_i`, which is the same as over the deltas `y_i − w_t` (distances ignore a shift).
/// Multi-Krum scores once and averages the `k` clients of best score, as the paper describes it
/// (not the iterated Krum that Bulyan, El Mhamdi et al. 2018, builds on).
///
/// Parameters: `byzantine` f >= 0 (default 1), the assumed number of faulty clients per round;
/// Multi-Krum also `keep` k >= 1 (default `m − f`, at most `m`). No state. Metrics: `clients`,
/// `update_norm`, `kept`, `score/<client>` for every client, and for Krum `selected_client`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Krum {
    /// f, the assumed number of faulty clients.
    pub byzantine: u64,
    /// `None` for Krum; `Some(keep)` for Multi-Krum, where `keep = None` means `m − f`.
    pub multi: Option<Option<u64>>,
}

impl Krum {
    /// Reads `byzantine` for Krum.
    ///
    /// # Errors
    /// `InvalidParams` for a value that is not a whole number or an unknown key.
    pub fn krum_from_params(params: &Params) -> Result<Self, PluginError> {
        let byzantine = params.whole_or("byzantine", 1, 0..)?;
        params.finish()?;
        Ok(Self {
            byzantine,
            multi: None,
        })
    }

    /// Reads `byzantine` and `keep` for Multi-Krum.
    ///
    /// # Errors
    /// `InvalidParams` for a value that is not a whole number, `keep` = 0, or an unknown key.
    pub fn multi_krum_from_params(params: &Params) -> Result<Self, PluginError> {
        let byzantine = params.whole_or("byzantine", 1, 0..)?;
        let keep = match params.value("keep") {
            None => None,
            Some(_) => Some(params.whole_or("keep", 1, 1..)?),
        };
        params.finish()?;
        Ok(Self {
            byzantine,
            multi: Some(keep),
        })
    }

    fn name(&self) -> &'static str {
        if self.multi.is_some() {
            "multi-krum"
        } else {
            "krum"
        }
    }
}

/// Every client's Krum score given `f`, in update order; `updates.len() > 2f + 2`.
pub fn scores(updates: &[&[f32]], byzantine: usize) -> Vec<f64> {
    let m = updates.len();
    let mut distance = vec![vec![0f64; m]; m];
    for a in 0..m {
        for b in a + 1..m {
            let d: f64 = updates[a]
                .iter()
                .zip(updates[b])
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum();
            distance[a][b] = d;
            distance[b][a] = d;
        }
    }
    let neighbours = m - byzantine - 2;
    (0..m)
        .map(|i| {
            let mut others: Vec<f64> = (0..m).filter(|&j| j != i).map(|j| distance[i][j]).collect();
            others.sort_unstable_by(f64::total_cmp);
            others[..neighbours].iter().sum()
        })
        .collect()
}

impl AggregatorFunction for Krum {
    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> Result<AggregationOutput, PluginError> {
        let name = self.name();
        input.validate(name)?;
        let updates = input.updates.as_slice();
        let m = updates.len() as u64;
        let f = self.byzantine;
        let bound = f.saturating_mul(2).saturating_add(2);
        if m <= bound {
            return Err(PluginError::invalid_input(format!(
                "{name}: needs more than 2f + 2 = {bound} clients in a round (byzantine = {f}), got {m}; lower byzantine or sample more clients"
            )));
        }
        let keep = match self.multi {
            None => 1,
            Some(None) => m - f,
            Some(Some(keep)) if keep <= m => keep,
            Some(Some(keep)) => {
                return Err(PluginError::invalid_input(format!(
                    "{name}: keep = {keep} exceeds the {m} clients of round {}",
                    input.round
                )))
            }
        };
        let params: Vec<&[f32]> = updates.iter().map(|u| u.params.as_slice()).collect();
        // m > 2f + 2 bounds f by the update count, so the cast is lossless.
        let scores = scores(&params, f as usize);
        let mut order: Vec<usize> = (0..updates.len()).collect();
        order.sort_by(|&a, &b| {
            scores[a]
                .total_cmp(&scores[b])
                .then(updates[a].client.cmp(&updates[b].client))
        });
        let chosen = &order[..keep as usize];
        let global: Vec<f32> = if chosen.len() == 1 {
            params[chosen[0]].to_vec()
        } else {
            let mut sum = vec![0f64; input.global.len()];
            for &i in chosen {
                for (s, &y) in sum.iter_mut().zip(params[i]) {
                    *s += f64::from(y);
                }
            }
            round::to_f32(sum.into_iter().map(|s| s / chosen.len() as f64).collect())
        };
        let mut metrics = input.base_metrics(&global);
        metrics.push(Metric::new("kept", keep as f64));
        if self.multi.is_none() {
            metrics.push(Metric::new(
                "selected_client",
                f64::from(updates[chosen[0]].client),
            ));
        }
        for (update, score) in updates.iter().zip(&scores) {
            metrics.push(Metric::new(&format!("score/{}", update.client), *score));
        }
        Ok(AggregationOutput {
            global: global.into(),
            metrics: metrics.into(),
        })
    }

    fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        Ok(state::header(self.name()))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        state::check_stateless(bytes, self.name())
    }
}

//! The coordinate-wise trimmed mean.

use fedpref_plugin_api::{
    state, AggregationInput, AggregationOutput, AggregatorFunction, Metric, Params, PluginError,
};

use crate::round;

/// Coordinate-wise trimmed mean (Yin, Chen, Ramchandran and Bartlett 2018, "Byzantine-Robust
/// Distributed Learning: Towards Optimal Statistical Rates", ICML, Definition 2): for every
/// coordinate, drop the `k = ⌊β m⌋` largest and `k` smallest of the `m` client values and average
/// the rest,
///
/// ```text
/// w_{t+1}[j] = 1/(m − 2k) Σ_{i ∈ U_j} y_i[j]
/// ```
///
/// with `U_j` the clients whose value at `j` ranks in `k+1 ..= m−k`. Unweighted, over the
/// parameters `y_i` (equal to trimming the deltas, which differ by a shift).
///
/// Parameter: `trim` β in `[0, 0.5]` (default 0.1), the fraction removed at EACH end; a round in
/// which `2k >= m` (nothing would be left, possible only at β = 0.5 with an even `m`) is an
/// error. No state. Metrics: `clients`, `update_norm`, `trimmed_per_end` (k), `kept` (m − 2k).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrimmedMean {
    /// β, the fraction trimmed at each end.
    pub trim: f64,
}

impl TrimmedMean {
    const NAME: &'static str = "trimmed-mean";

    /// Reads `trim`.
    ///
    /// # Errors
    /// `InvalidParams` for `trim` outside `[0, 0.5]` or an unknown key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let trim = params.f64_or("trim", 0.1)?;
        params.finish()?;
        if !(0.0..=0.5).contains(&trim) {
            return Err(PluginError::invalid_params(format!(
                "`trim` = {trim} is outside [0, 0.5] (the fraction of clients removed at each end)"
            )));
        }
        Ok(Self { trim })
    }

    /// `k = ⌊β m⌋` for a round of `m` clients.
    pub fn trimmed_per_end(&self, m: usize) -> usize {
        // The allowance keeps decimal β whose binary value falls just short exact: 0.29 · 100
        // is 28.999999999999996 in f64 but must trim 29.
        (self.trim * m as f64 + 1e-9).floor() as usize
    }
}

impl AggregatorFunction for TrimmedMean {
    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> Result<AggregationOutput, PluginError> {
        input.validate(Self::NAME)?;
        let updates = input.updates.as_slice();
        let m = updates.len();
        let k = self.trimmed_per_end(m);
        if 2 * k >= m {
            return Err(PluginError::invalid_input(format!(
                "trimmed-mean: trim = {} removes {k} of {m} clients at each end, leaving none; lower trim or sample more clients",
                self.trim
            )));
        }
        let global = round::to_f32(round::per_coordinate(
            input.global.len(),
            updates,
            |sorted| round::mean(&sorted[k..m - k]),
        ));
        let mut metrics = input.base_metrics(&global);
        metrics.push(Metric::new("trimmed_per_end", k as f64));
        metrics.push(Metric::new("kept", (m - 2 * k) as f64));
        Ok(AggregationOutput {
            global: global.into(),
            metrics: metrics.into(),
        })
    }

    fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        Ok(state::header(Self::NAME))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        state::check_stateless(bytes, Self::NAME)
    }
}

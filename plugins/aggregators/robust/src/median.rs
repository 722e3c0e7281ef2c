//! The coordinate-wise median.

use fedpref_plugin_api::{
    state, AggregationInput, AggregationOutput, AggregatorFunction, Params, PluginError,
};

use crate::round;

/// Coordinate-wise median (Yin, Chen, Ramchandran and Bartlett 2018, "Byzantine-Robust
/// Distributed Learning: Towards Optimal Statistical Rates", ICML, Definition 1):
///
/// ```text
/// w_{t+1}[j] = med{ y_i[j] : i ∈ S_t }
/// ```
///
/// For an even number `m` of clients, the mean of the two middle values. Unweighted: a faulty
/// client could claim any example count. Taken over the parameters `y_i`, which equals `w_t` plus
/// the median of the deltas `y_i − w_t` (the median commutes with a shift).
///
/// No parameters, no state. Metrics: `clients`, `update_norm`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Median;

impl Median {
    const NAME: &'static str = "median";

    /// Accepts no parameters.
    ///
    /// # Errors
    /// `InvalidParams` for any key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        params.finish()?;
        Ok(Median)
    }
}

/// The median of sorted, non-empty `values`.
pub fn median_of_sorted(values: &[f32]) -> f64 {
    let m = values.len();
    if m % 2 == 1 {
        f64::from(values[m / 2])
    } else {
        (f64::from(values[m / 2 - 1]) + f64::from(values[m / 2])) / 2.0
    }
}

impl AggregatorFunction for Median {
    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> Result<AggregationOutput, PluginError> {
        input.validate(Self::NAME)?;
        let updates = input.updates.as_slice();
        let global = round::to_f32(round::per_coordinate(
            input.global.len(),
            updates,
            median_of_sorted,
        ));
        let metrics = input.base_metrics(&global);
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

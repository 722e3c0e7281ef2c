//! `iid`: whole examples shuffled and cut into equal shards (sizes differ by at most one).
//!
//! The baseline split of federated learning papers: every client sees the same distribution.

use fedpref_plugin_api::{
    Params, PartitionInput, PartitionOutput, PartitionerFunction, PluginError,
};

use crate::common;

/// Equal shuffled shards of whole examples. No parameters.
#[derive(Debug, Clone, Copy)]
pub struct Iid;

impl Iid {
    /// Reads (no) parameters.
    ///
    /// # Errors
    /// `InvalidParams` for any key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        params.finish()?;
        Ok(Iid)
    }
}

impl PartitionerFunction for Iid {
    fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput, PluginError> {
        let examples = input.examples.as_slice();
        let n_clients = common::check_counts("iid", examples.len(), input.n_clients, "examples")?;
        let items = examples.iter().map(common::whole).collect();
        let clients = common::deal_equal(items, n_clients, &mut common::rng(input.seed));
        Ok(common::output(clients, Vec::new()))
    }
}

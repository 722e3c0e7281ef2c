//! `natural`: one client per distinct `group` (user or client id), as in FedLLM-Bench's per-user
//! splits.
//!
//! `n_clients` and the seed are ignored: the data decides. Clients follow the sorted group order,
//! and inside a client examples keep their input order, so the split is the same for every seed.
//! Two optional caps:
//! - `merge_below = m`: groups with fewer than `m` examples are merged into one shared client;
//! - `max_clients = k`: when more than `k` clients remain, the `k - 1` largest groups (ties broken
//!   by group name) keep their own client and every other group joins the shared client, so no
//!   example is dropped and the client count is exactly `k`.
//!
//! The shared client, when there is one, comes last.

use std::collections::BTreeMap;

use fedpref_plugin_api::{
    Assignment, Metric, Params, PartitionInput, PartitionOutput, PartitionerFunction, PluginError,
};

use crate::common;

/// One client per group, with optional merging of small groups.
#[derive(Debug, Clone, Copy)]
pub struct Natural {
    /// Cap on the number of clients; 0 means none (`max_clients`, default 0).
    max_clients: u32,
    /// Groups smaller than this are merged into the shared client; 0 disables (`merge_below`).
    merge_below: u32,
}

impl Natural {
    /// Reads `max_clients` and `merge_below` (whole numbers, 0 = off).
    ///
    /// # Errors
    /// `InvalidParams` for non-integral or unknown keys.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let max_clients = params.whole_or("max_clients", 0, 0..)?;
        let merge_below = params.whole_or("merge_below", 0, 0..)?;
        params.finish()?;
        Ok(Self {
            max_clients,
            merge_below,
        })
    }
}

impl PartitionerFunction for Natural {
    fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput, PluginError> {
        let examples = input.examples.as_slice();
        if examples.is_empty() {
            return Err(PluginError::invalid_input(
                "natural: there are no examples to split",
            ));
        }
        let missing: Vec<u64> = examples
            .iter()
            .filter(|m| m.group.is_empty())
            .map(|m| m.index)
            .collect();
        if let Some(first) = missing.first() {
            return Err(PluginError::invalid_input(format!(
                "natural: {} of {} examples have no group (first: example {first}); \
                 set data.group_key to the user or client id column, or use another partitioner",
                missing.len(),
                examples.len()
            )));
        }
        let mut groups: BTreeMap<&str, Vec<Assignment>> = BTreeMap::new();
        for meta in examples {
            groups
                .entry(meta.group.as_str())
                .or_default()
                .push(common::whole(meta));
        }
        let n_groups = groups.len();
        let (mut own, mut shared): (Vec<_>, Vec<_>) = groups
            .into_iter()
            .partition(|(_, members)| members.len() >= self.merge_below as usize);
        let max_clients = self.max_clients as usize;
        let n_wanted = own.len() + usize::from(!shared.is_empty());
        if max_clients > 0 && n_wanted > max_clients {
            // Largest first, ties by name; the stable sort keeps the name order among equals.
            own.sort_by_key(|(_, members)| std::cmp::Reverse(members.len()));
            shared.extend(own.split_off(max_clients - 1));
            own.sort_by(|a, b| a.0.cmp(b.0));
        }
        let merged_groups = shared.len();
        let mut clients: Vec<Vec<Assignment>> =
            own.into_iter().map(|(_, members)| members).collect();
        if !shared.is_empty() {
            let mut members: Vec<Assignment> = shared.into_iter().flat_map(|(_, m)| m).collect();
            members.sort_by_key(|a| a.example);
            clients.push(members);
        }
        let metrics = vec![
            Metric::new("groups", n_groups as f64),
            Metric::new("merged_groups", merged_groups as f64),
        ];
        Ok(common::output(clients, metrics))
    }
}

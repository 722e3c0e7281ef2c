//! Expanding an experiment into its runs: one [`RunConfig`] per (method, aggregator, seed),
//! each in its own directory under the sweep directory.

use std::path::PathBuf;

use fedpref_plugin_api::{ComponentKind, DataNeeds, LossSpec};

use super::{ComponentParams, ExperimentConfig};
use crate::{Error, PluginHost, Result};

/// What distinguishes one run of a sweep from its siblings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunKey {
    /// Loss component.
    pub method: String,
    /// Aggregator component.
    pub aggregator: String,
    /// Seed.
    pub seed: u64,
}

impl RunKey {
    /// The run directory's name, e.g. `dpo-fedavg-s0`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}-s{}", self.method, self.aggregator, self.seed)
    }
}

/// One resolved run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Method, aggregator and seed of this run.
    pub key: RunKey,
    /// The experiment config narrowed to this run (single-element method, aggregator and seed
    /// lists); written to the run directory as `config.toml`.
    pub config: ExperimentConfig,
    /// `output_dir/name/<key>`.
    pub run_dir: PathBuf,
    /// The loss's declared needs.
    pub loss_spec: LossSpec,
    /// The partitioner to use: the configured one, or `redistribute` for methods that need
    /// redistributed data.
    pub partitioner: String,
    /// Its parameters.
    pub partitioner_params: ComponentParams,
}

impl RunConfig {
    /// The loss's parameters from `[losses.<method>]`.
    pub fn loss_params(&self) -> serde_json::Value {
        params_json(self.config.losses.get(&self.key.method))
    }

    /// The aggregator's parameters from `[aggregators.<name>]`.
    pub fn aggregator_params(&self) -> serde_json::Value {
        params_json(self.config.aggregators.get(&self.key.aggregator))
    }
}

fn params_json(params: Option<&ComponentParams>) -> serde_json::Value {
    serde_json::Value::Object(params.cloned().unwrap_or_default().into_iter().collect())
}

/// The partitioner KTOR-style methods use.
pub const REDISTRIBUTE: &str = "redistribute";

impl ExperimentConfig {
    /// The sweep directory, `output_dir/name`.
    pub fn sweep_dir(&self) -> PathBuf {
        self.experiment.output_dir.join(&self.experiment.name)
    }

    /// Expands the sweep and checks every component against the loaded plugins, before any
    /// model or data is loaded.
    ///
    /// # Errors
    /// [`Error::UnknownComponent`] for a name no plugin provides (in the sweep lists or as a
    /// parameter table); [`Error::Usage`] when a method cannot run with the configured
    /// partitioner (DPO on redistributed data).
    pub fn runs(&self, host: &PluginHost) -> Result<Vec<RunConfig>> {
        for name in &self.experiment.aggregators {
            host.find(ComponentKind::Aggregator, name)?;
        }
        host.find(ComponentKind::Partitioner, &self.partition.name)?;
        // Parameter tables may name components the sweep does not run (a config narrowed with
        // --set), but each must name a component that exists: a typo is an error.
        for name in self.losses.keys() {
            host.find(ComponentKind::Loss, name)?;
        }
        for name in self.aggregators.keys() {
            host.find(ComponentKind::Aggregator, name)?;
        }
        for benchmark in &self.eval.benchmarks {
            host.find(ComponentKind::Scorer, &benchmark.scorer)?;
        }
        let mut runs = Vec::new();
        for method in &self.experiment.methods {
            let (info, _) = host.find(ComponentKind::Loss, method)?;
            let spec = info.loss_spec.into_option().ok_or_else(|| {
                Error::Usage(format!(
                    "loss {method:?} declares no data needs; its plugin is malformed"
                ))
            })?;
            let (partitioner, partitioner_params) = match spec.data {
                DataNeeds::Redistributed => (REDISTRIBUTE.to_owned(), ComponentParams::new()),
                DataNeeds::Paired if self.partition.name == REDISTRIBUTE => {
                    return Err(Error::Usage(format!(
                        "method {method:?} trains on (chosen, rejected) pairs, but partition.name = \
                         \"redistribute\" breaks every pair across clients; use another partitioner \
                         (iid, dirichlet, natural, quantity-skew) or a method for single answers (kto, ktor)"
                    )))
                }
                _ => (self.partition.name.clone(), self.partition.params.clone()),
            };
            for aggregator in &self.experiment.aggregators {
                for &seed in &self.experiment.seeds {
                    let key = RunKey {
                        method: method.clone(),
                        aggregator: aggregator.clone(),
                        seed,
                    };
                    let mut config = self.clone();
                    config.experiment.methods = vec![method.clone()];
                    config.experiment.aggregators = vec![aggregator.clone()];
                    config.experiment.seeds = vec![seed];
                    config.losses.retain(|name, _| name == method);
                    config.aggregators.retain(|name, _| name == aggregator);
                    runs.push(RunConfig {
                        run_dir: self.sweep_dir().join(key.dir_name()),
                        key,
                        config,
                        loss_spec: spec,
                        partitioner: partitioner.clone(),
                        partitioner_params: partitioner_params.clone(),
                    });
                }
            }
        }
        Ok(runs)
    }
}

//! Expanding an experiment into its runs: one [`RunKey`] per (method, aggregator, seed), each with
//! the config narrowed to it and its own directory under the sweep directory. Checking the runs
//! against the loaded plugins is a later step (`federation::plan`).

use std::path::PathBuf;

use super::ExperimentConfig;

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

impl ExperimentConfig {
    /// The sweep directory, `output_dir/name`.
    pub fn sweep_dir(&self) -> PathBuf {
        self.experiment.output_dir.join(&self.experiment.name)
    }

    /// Every run of the sweep, methods outermost, then aggregators, then seeds.
    pub fn run_keys(&self) -> Vec<RunKey> {
        let mut keys = Vec::new();
        for method in &self.experiment.methods {
            for aggregator in &self.experiment.aggregators {
                for &seed in &self.experiment.seeds {
                    keys.push(RunKey {
                        method: method.clone(),
                        aggregator: aggregator.clone(),
                        seed,
                    });
                }
            }
        }
        keys
    }

    /// The config of one run: single-element method, aggregator and seed lists, and only that
    /// method's and aggregator's parameter tables. It is written to the run directory.
    pub fn narrowed_to(&self, key: &RunKey) -> ExperimentConfig {
        let mut config = self.clone();
        config.experiment.methods = vec![key.method.clone()];
        config.experiment.aggregators = vec![key.aggregator.clone()];
        config.experiment.seeds = vec![key.seed];
        config.losses.retain(|name, _| name == &key.method);
        config.aggregators.retain(|name, _| name == &key.aggregator);
        config
    }

    /// The directory of one run.
    pub fn run_dir(&self, key: &RunKey) -> PathBuf {
        self.sweep_dir().join(key.dir_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_expands_to_one_narrowed_run_per_method_aggregator_and_seed() {
        let mut config = ExperimentConfig::default();
        config.experiment.methods = vec!["dpo".into(), "kto".into()];
        config.experiment.aggregators = vec!["fedavg".into(), "fedprox".into()];
        config.experiment.seeds = vec![0, 1];
        config.losses.insert("dpo".into(), Default::default());
        config.losses.insert("kto".into(), Default::default());
        let keys = config.run_keys();
        assert_eq!(keys.len(), 8);
        assert_eq!(keys[0].dir_name(), "dpo-fedavg-s0");
        assert_eq!(keys[7].dir_name(), "kto-fedprox-s1");
        let narrowed = config.narrowed_to(&keys[5]);
        assert_eq!(narrowed.experiment.methods, ["kto"]);
        assert_eq!(narrowed.experiment.aggregators, ["fedavg"]);
        assert_eq!(narrowed.experiment.seeds, [1]);
        assert_eq!(narrowed.losses.keys().collect::<Vec<_>>(), ["kto"]);
        assert_eq!(
            config.run_dir(&keys[5]),
            PathBuf::from("runs/experiment/kto-fedavg-s1")
        );
    }
}

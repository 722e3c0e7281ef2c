//! The runs of a sweep checked against the loaded plugins, before any data or model loads: every
//! component named in the config exists, each method's data needs fit the partitioner, and each
//! run knows the partitioner it will use.

use std::path::PathBuf;

use fedpref_plugin_api::{ComponentKind, DataNeeds, LossSpec};

use crate::{
    config::{ExperimentConfig, RunKey},
    plugin_host::{params_json, ComponentParams, PluginHost},
    Error, Result,
};

/// The partitioner KTOR-style methods use.
pub const REDISTRIBUTE: &str = "redistribute";

/// One run, resolved against the plugins.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Method, aggregator and seed of this run.
    pub key: RunKey,
    /// The experiment config narrowed to this run; written to the run directory as
    /// `config.toml`.
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
    /// For `redistribute`: the configured partitioner and its parameters, whose split it
    /// rearranges, keeping (by default) each client's number of answers.
    pub base_partitioner: Option<(String, ComponentParams)>,
}

impl RunPlan {
    /// The loss's parameters from `[losses.<method>]`.
    pub fn loss_params(&self) -> serde_json::Value {
        params_json(self.config.losses.get(&self.key.method))
    }

    /// The aggregator's parameters from `[aggregators.<name>]`.
    pub fn aggregator_params(&self) -> serde_json::Value {
        params_json(self.config.aggregators.get(&self.key.aggregator))
    }

    /// A codec's parameters from `[codecs.<name>]`.
    pub fn codec_params(&self, name: &str) -> serde_json::Value {
        params_json(self.config.codecs.get(name))
    }
}

/// Expands `config`'s sweep and checks every component against `host`.
///
/// # Errors
/// [`Error::UnknownComponent`] for a name no plugin provides (in the sweep lists or as a
/// parameter table); [`Error::Usage`] when a method cannot run with the configured partitioner
/// (DPO on redistributed data), or when a run's rehearsal fails ([`super::rehearsal`]: a
/// component's parameters, or an aggregator that cannot aggregate the configured round).
pub fn plan_sweep(config: &ExperimentConfig, host: &PluginHost) -> Result<Vec<RunPlan>> {
    check_components(config, host)?;
    let plans = config
        .run_keys()
        .into_iter()
        .map(|key| {
            let loss_spec = loss_spec(host, &key.method)?;
            let (partitioner, partitioner_params) =
                partitioner_for(config, &key.method, loss_spec)?;
            let base_partitioner = (loss_spec.data == DataNeeds::Redistributed).then(|| {
                (
                    config.partition.name.clone(),
                    config.partition.params.clone(),
                )
            });
            Ok(RunPlan {
                run_dir: config.run_dir(&key),
                config: config.narrowed_to(&key),
                key,
                loss_spec,
                partitioner,
                partitioner_params,
                base_partitioner,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    super::rehearsal::rehearse(&plans, host)?;
    Ok(plans)
}

/// The one run of `config` that commands working on a single run act on: the run named `name`
/// (`method-aggregator-sSEED`), or the sweep's only run.
///
/// # Errors
/// As [`plan_sweep`]; [`Error::Usage`] when `name` is not in the sweep, or when no name is
/// given and the sweep has several runs.
pub fn plan_one(
    config: &ExperimentConfig,
    host: &PluginHost,
    name: Option<&str>,
) -> Result<RunPlan> {
    let mut plans = plan_sweep(config, host)?;
    let names = || {
        plans
            .iter()
            .map(|p| p.key.dir_name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => match plans.iter().position(|p| p.key.dir_name() == name) {
            Some(i) => Ok(plans.swap_remove(i)),
            None => Err(Error::Usage(format!(
                "the config's sweep has no run {name:?}; its runs: {}",
                names()
            ))),
        },
        None if plans.len() == 1 => Ok(plans.remove(0)),
        None => Err(Error::Usage(format!(
            "the config's sweep has {} runs ({}); pick one with --run NAME",
            plans.len(),
            names()
        ))),
    }
}

/// The names as `&str`s.
fn names<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    names.into_iter().map(String::as_str).collect()
}

/// Every component the config names exists. Parameter tables may name components the sweep
/// does not run (a config narrowed with --set), but each must name one that exists: a typo is
/// an error.
fn check_components(config: &ExperimentConfig, host: &PluginHost) -> Result<()> {
    let compression = &config.compression;
    let codecs = [compression.uplink_codec(), compression.downlink_codec()]
        .into_iter()
        .flatten()
        .chain(config.codecs.keys().map(String::as_str))
        .collect();
    let named = [
        (ComponentKind::Loss, names(&config.experiment.methods)),
        (
            ComponentKind::Aggregator,
            names(&config.experiment.aggregators),
        ),
        (
            ComponentKind::Partitioner,
            vec![config.partition.name.as_str()],
        ),
        (ComponentKind::Loss, names(config.losses.keys())),
        (ComponentKind::Aggregator, names(config.aggregators.keys())),
        (
            ComponentKind::Scorer,
            config
                .eval
                .benchmarks
                .iter()
                .map(|b| b.scorer.as_str())
                .collect(),
        ),
        (ComponentKind::Codec, codecs),
    ];
    for (kind, names) in named {
        for name in names {
            host.find(kind, name)?;
        }
    }
    Ok(())
}

fn loss_spec(host: &PluginHost, method: &str) -> Result<LossSpec> {
    let (info, _) = host.find(ComponentKind::Loss, method)?;
    info.loss_spec.into_option().ok_or_else(|| {
        Error::Usage(format!(
            "loss {method:?} declares no data needs; its plugin is malformed"
        ))
    })
}

/// The partitioner `method` uses: `redistribute` (with `partition.redistribute`) for
/// redistributed data, the configured one otherwise, which must keep pairs whole for a paired
/// loss.
fn partitioner_for(
    config: &ExperimentConfig,
    method: &str,
    spec: LossSpec,
) -> Result<(String, ComponentParams)> {
    match spec.data {
        DataNeeds::Redistributed => Ok((
            REDISTRIBUTE.to_owned(),
            config.partition.redistribute.clone(),
        )),
        DataNeeds::Paired if config.partition.name == REDISTRIBUTE => Err(Error::Usage(format!(
            "method {method:?} trains on (chosen, rejected) pairs, but partition.name = \
             \"redistribute\" breaks every pair across clients; use another partitioner \
             (iid, dirichlet, natural, quantity-skew) or a method for single answers (kto, ktor)"
        ))),
        _ => Ok((
            config.partition.name.clone(),
            config.partition.params.clone(),
        )),
    }
}

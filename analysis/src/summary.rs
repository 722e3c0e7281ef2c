//! What a report says about the runs themselves: the headline settings, every config key with
//! its value (or the values it takes across runs), and one line per run (status, rounds).

use std::collections::BTreeMap;

use crate::{frame::strings, order, read::metrics::IDENTITY, Sweep};

/// Settings shown first, with their labels.
const HEADLINE: [(&str, &str); 11] = [
    ("model.path", "Model"),
    ("data.path", "Training data"),
    ("data.limit", "Examples used"),
    ("federation.clients", "Clients"),
    ("federation.clients_per_round", "Clients per round"),
    ("federation.rounds", "Rounds"),
    ("training.local_steps", "Local steps per round"),
    ("training.batch_size", "Batch size"),
    ("training.lr", "Learning rate"),
    ("lora.rank", "LoRA rank"),
    ("lora.targets", "LoRA targets"),
];

/// Config keys that name the run rather than describe the setting.
fn is_identity_key(key: &str) -> bool {
    matches!(
        key,
        "experiment.methods" | "experiment.aggregators" | "experiment.seeds" | "path"
    ) || IDENTITY.contains(&key)
        || matches!(
            key,
            "partitioner" | "model" | "status" | "rounds_completed" | "rounds_planned"
        )
}

/// A labelled value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Label or config key.
    pub key: String,
    /// The value, or `a | b` when runs differ.
    pub value: String,
}

/// The sweep at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Methods, aggregators, seeds and the headline settings.
    pub headline: Vec<Setting>,
    /// Every config key.
    pub config: Vec<Setting>,
    /// One row per run: name, method, aggregator, seed, partitioner, status, rounds.
    pub runs: Vec<[String; 7]>,
}

/// Values of every config column across runs, joined with ` | ` when they differ. A method's
/// or aggregator's parameters (`losses.dpo.beta`) count only over the runs that use it.
pub(crate) fn config_values(sweep: &Sweep) -> BTreeMap<String, String> {
    let frame = &sweep.runs_frame;
    let (methods, aggregators) = (strings(frame, "method"), strings(frame, "aggregator"));
    let mut values = BTreeMap::new();
    for column in frame.get_column_names() {
        let name = column.as_str();
        if is_identity_key(name) {
            continue;
        }
        let owner = |prefix: &str, owners: &[Option<String>], row: usize| match name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('.'))
        {
            Some((component, _)) => owners[row].as_deref() == Some(component),
            None => true,
        };
        let mut distinct: Vec<String> = strings(frame, name)
            .into_iter()
            .enumerate()
            .filter(|(row, _)| {
                owner("losses.", &methods, *row) && owner("aggregators.", &aggregators, *row)
            })
            .map(|(_, v)| v.unwrap_or_else(|| "(unset)".into()))
            .collect();
        distinct.sort();
        distinct.dedup();
        values.insert(name.to_owned(), distinct.join(" | "));
    }
    values
}

/// Summarizes `sweep`.
pub fn summarize(sweep: &Sweep) -> Summary {
    let config = config_values(sweep);
    let list = |names: Vec<String>, label: fn(&str) -> String| {
        names
            .iter()
            .map(|n| label(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let seeds: Vec<String> = {
        let mut seeds: Vec<u64> = sweep.runs.iter().map(|r| r.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        seeds.iter().map(u64::to_string).collect()
    };
    let mut headline = vec![
        Setting {
            key: "Methods".into(),
            value: list(
                order::sorted(sweep.runs.iter().map(|r| r.method.clone()), order::methods),
                order::method_label,
            ),
        },
        Setting {
            key: "Aggregators".into(),
            value: list(
                order::sorted(
                    sweep.runs.iter().map(|r| r.aggregator.clone()),
                    order::aggregators,
                ),
                str::to_owned,
            ),
        },
        Setting {
            key: "Seeds".into(),
            value: seeds.join(", "),
        },
    ];
    let manifests: Vec<&str> = sweep
        .runs
        .iter()
        .filter(|r| r.partition.is_some())
        .map(|r| r.method.as_str())
        .collect();
    let mut partitioners: Vec<(String, Vec<String>)> = Vec::new();
    for method in order::sorted(sweep.runs.iter().map(|r| r.method.clone()), order::methods) {
        let used: Vec<String> = order::sorted(
            sweep
                .runs
                .iter()
                .filter(|r| r.method == method)
                // The manifest says what was used; the config's partition.name is a guess
                // (KTOR always redistributes), counted only for methods without manifests.
                .filter(|r| r.partition.is_some() || !manifests.contains(&r.method.as_str()))
                .filter_map(|r| r.partitioner.clone()),
            |a, b| a.cmp(b),
        );
        let used = if used.is_empty() {
            "?".to_owned()
        } else {
            used.join(" | ")
        };
        match partitioners.iter_mut().find(|(p, _)| *p == used) {
            Some((_, methods)) => methods.push(order::method_label(&method)),
            None => partitioners.push((used, vec![order::method_label(&method)])),
        }
    }
    let partitioners: Vec<String> = partitioners
        .iter()
        .map(|(p, methods)| format!("{p} ({})", methods.join(", ")))
        .collect();
    headline.push(Setting {
        key: "Partitioner".into(),
        value: partitioners.join(", "),
    });
    for (key, label) in HEADLINE {
        if let Some(value) = config.get(key) {
            headline.push(Setting {
                key: label.into(),
                value: value.clone(),
            });
        }
    }
    headline.push(Setting {
        key: "Differential privacy".into(),
        value: privacy_line(sweep),
    });
    let runs = sweep
        .runs
        .iter()
        .map(|run| {
            let rounds = match (run.rounds_completed, run.rounds_planned) {
                (Some(done), Some(planned)) => format!("{done} of {planned}"),
                (Some(done), None) => done.to_string(),
                (None, Some(planned)) => format!("? of {planned}"),
                (None, None) => "?".into(),
            };
            [
                run.name.clone(),
                order::method_label(&run.method),
                run.aggregator.clone(),
                run.seed.to_string(),
                run.partitioner.clone().unwrap_or_else(|| "?".into()),
                run.status
                    .clone()
                    .unwrap_or_else(|| "unknown (no manifest)".into()),
                rounds,
            ]
        })
        .collect();
    Summary {
        headline,
        config: config
            .into_iter()
            .map(|(key, value)| Setting { key, value })
            .collect(),
        runs,
    }
}

/// The sweep's guarantee in words: the largest ε of its runs (from their manifests) with what
/// it covers, or that there is none.
fn privacy_line(sweep: &Sweep) -> String {
    let private: Vec<_> = sweep
        .runs
        .iter()
        .filter_map(|r| r.privacy.as_ref())
        .collect();
    let Some(worst) = private
        .iter()
        .max_by(|a, b| a.epsilon.total_cmp(&b.epsilon))
    else {
        return "none".into();
    };
    let clip = if worst.adaptive_clipping {
        format!("adaptive clip norm from {}", worst.clip_norm)
    } else {
        format!("clip norm {}", worst.clip_norm)
    };
    let some = if private.len() < sweep.runs.len() {
        format!(" ({} of {} runs)", private.len(), sweep.runs.len())
    } else {
        String::new()
    };
    format!(
        "{}-level{some}: ε = {:.3} at δ = {:e} spent (noise multiplier {}, {clip}, {} sampling); \
         covers {}",
        worst.mode,
        worst.epsilon,
        worst.delta,
        worst.noise_multiplier,
        worst.sampling,
        worst.covers
    )
}

/// Header of [`Summary::runs`].
pub const RUN_COLUMNS: [&str; 7] = [
    "Run",
    "Method",
    "Aggregator",
    "Seed",
    "Partitioner",
    "Status",
    "Rounds",
];

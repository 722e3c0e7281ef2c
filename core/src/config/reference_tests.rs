//! `docs/configuration.md` against the config types: every key of the default config (and of a
//! benchmark entry) is documented, every documented key is accepted by the loader, and every
//! documented default is the code's.

use std::collections::BTreeMap;

use super::ExperimentConfig;
use crate::eval::BenchmarkConfig;

/// Keys the default config does not write out (unset, or skipped at their default): the
/// documented default and a value to try each with.
const OPTIONAL: [(&str, &str, &str); 31] = [
    ("data.path", "unset", "\"pairs.jsonl\""),
    ("data.eval_path", "unset", "\"held-out.jsonl\""),
    ("data.group_key", "unset", "\"user_id\""),
    ("data.category_key", "unset", "\"topic\""),
    ("data.limit", "unset", "12"),
    ("federation.deadline_seconds", "unset", "60.0"),
    ("eval.judge_model", "unset", "\"judge.gguf\""),
    ("eval.benchmarks[].prompts", "unset", "\"q.jsonl\""),
    ("eval.benchmarks[].references", "unset", "\"r.jsonl\""),
    ("eval.benchmarks[].limit", "unset", "3"),
    ("eval.benchmarks[].compare_to_base", "`false`", "true"),
    ("eval.benchmarks[].across_methods", "`false`", "true"),
    ("eval.benchmarks[].every", "`1`", "2"),
    ("eval.benchmarks[].preset", "unset", "\"paper\""),
    ("checkpoint.keep", "`2`", "3"),
    ("training.max_update_norm", "`0.0`", "10.0"),
    ("training.shared_prefix", "`true`", "false"),
    ("training.activation_checkpointing", "`false`", "true"),
    ("training.head_chunk", "`1024`", "256"),
    ("federation.sampling", "`\"fixed\"`", "\"poisson\""),
    ("privacy.mode", "`\"none\"`", "\"none\""),
    ("privacy.clip_norm", "`1.0`", "0.5"),
    ("privacy.noise_multiplier", "`1.0`", "1.2"),
    ("privacy.delta", "`1e-5`", "1e-6"),
    ("privacy.epsilon_budget", "`0.0`", "8.0"),
    ("privacy.target_quantile", "`0.0`", "0.0"),
    ("privacy.clip_learning_rate", "`0.2`", "0.3"),
    ("privacy.quantile_noise", "`0.0`", "2.0"),
    ("compression.uplink", "`\"none\"`", "\"none\""),
    ("compression.downlink", "`\"none\"`", "\"none\""),
    ("compression.error_feedback", "`true`", "false"),
];

/// `| `key` | type | default | meaning |` rows: key -> default cell.
fn documented() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let text = std::fs::read_to_string(path).expect("docs/configuration.md");
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let default = cells.get(3)?;
            Some((key.to_owned(), (*default).to_owned()))
        })
        .collect()
}

/// Dotted paths of every leaf of a TOML table (tables recursed, arrays and values leaves).
fn leaves(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(table) if !table.is_empty() || prefix.is_empty() => {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, value, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

fn same(documented: &toml::Value, actual: &toml::Value) -> bool {
    match (
        documented
            .as_float()
            .or(documented.as_integer().map(|i| i as f64)),
        actual,
    ) {
        (Some(d), toml::Value::Float(a)) => (d - a).abs() <= 1e-12 * a.abs().max(1.0),
        (Some(d), toml::Value::Integer(a)) => d == *a as f64,
        _ => documented == actual,
    }
}

#[test]
fn reference_documents_every_key_with_the_codes_default() {
    let docs = documented();
    let mut defaults = BTreeMap::new();
    leaves(
        "",
        &toml::Value::try_from(ExperimentConfig::default()).expect("serialize"),
        &mut defaults,
    );
    let benchmark: BenchmarkConfig =
        toml::from_str("name = \"b\"\nscorer = \"s\"").expect("a minimal benchmark");
    let mut entry = BTreeMap::new();
    leaves(
        "",
        &toml::Value::try_from(benchmark).expect("serialize"),
        &mut entry,
    );
    for (key, value) in entry {
        defaults.insert(format!("eval.benchmarks[].{key}"), value);
    }
    // The per-component parameter tables are open maps, documented in prose.
    defaults.retain(|key, _| key != "losses" && key != "aggregators");

    let mut problems = Vec::new();
    for (key, value) in &defaults {
        match docs.get(key) {
            None => problems.push(format!("`{key}` is not documented")),
            Some(cell) if cell == "required" => {}
            Some(cell) => {
                let literal = cell.trim_matches('`');
                let parsed = toml::from_str::<toml::Table>(&format!("v = {literal}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"));
                if !parsed.is_some_and(|d| same(&d, value)) {
                    problems.push(format!(
                        "`{key}`: documented default {cell}, the code's is {value}"
                    ));
                }
            }
        }
    }
    for (key, cell) in &docs {
        let optional = OPTIONAL.iter().find(|(k, ..)| k == key);
        match optional {
            None if !defaults.contains_key(key) => {
                problems.push(format!(
                    "`{key}` ({cell}) is documented but is no config key"
                ));
            }
            Some((_, default, _)) if default != cell => {
                problems.push(format!("`{key}`: the docs say {cell}, expected {default}"));
            }
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_key_without_a_written_default_is_accepted() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "").expect("write");
    for (key, _, value) in OPTIONAL {
        let loaded = match key.strip_prefix("eval.benchmarks[].") {
            Some(field) => toml::from_str::<BenchmarkConfig>(&format!(
                "name = \"b\"\nscorer = \"s\"\n{field} = {value}"
            ))
            .map(drop)
            .map_err(|e| e.to_string()),
            None => super::load(&path, &[format!("{key}={value}")])
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        loaded.unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

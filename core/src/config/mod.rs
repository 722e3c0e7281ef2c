//! Experiment configuration: TOML files composed with figment (file < `FEDPREF_*` environment
//! < `--set key=value`), extracted into serde structs that reject unknown keys, then expanded
//! into one [`RunKey`] per (method, aggregator, seed) of the sweep.
//!
//! ```toml
//! [experiment]
//! name = "quickstart"
//! methods = ["dpo", "kto", "ktor"]     # loss components; a sweep runs each
//! aggregators = ["fedavg"]
//! seeds = [0]
//!
//! [losses.dpo]                         # parameters of a loss, by name
//! beta = 0.1
//! ```

mod sections;
mod sweep;

use std::path::{Path, PathBuf};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};

pub use sections::*;
pub use sweep::RunKey;

use crate::{Error, Result};

/// The environment variable prefix of config overrides: `FEDPREF_TRAINING__LR=1e-4` sets
/// `training.lr` (a double underscore separates levels).
pub const ENV_PREFIX: &str = "FEDPREF_";

/// Loads `path`, applies environment overrides and `overrides` (`key.path=value`, the value
/// parsed as TOML, else taken as a string), and checks every key and value.
///
/// Relative paths inside the config (model, data, plugin directories) are resolved against the
/// current directory, as a user typing them on the command line expects.
///
/// # Errors
/// [`Error::Config`] naming the file, the key and what is allowed.
pub fn load(path: &Path, overrides: &[String]) -> Result<ExperimentConfig> {
    if !path.is_file() {
        return Err(Error::Config {
            path: path.to_path_buf(),
            message: "no such config file".to_owned(),
        });
    }
    let mut figment = Figment::from(Serialized::defaults(ExperimentConfig::default()))
        .merge(Toml::file(path))
        .merge(env_overrides());
    for item in overrides {
        let (key, value) = parse_override(item)?;
        figment = figment.merge(Serialized::global(&key, value));
    }
    let config: ExperimentConfig = figment.extract().map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: figment_message(e),
    })?;
    config.validate().map_err(|message| Error::Config {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(config)
}

/// `FEDPREF_<SECTION>__<KEY>` variables whose first level names a config section; the
/// program's other variables (`FEDPREF_PLUGIN_PATH`, `FEDPREF_REQUIRE_ASSETS`) are not config.
fn env_overrides() -> Env {
    let sections = section_names();
    Env::prefixed(ENV_PREFIX)
        .split("__")
        .filter(move |key| names_a_section(key.as_str(), &sections))
}

/// The top-level tables of a config (`experiment`, `model`, ...).
fn section_names() -> Vec<String> {
    match serde_json::to_value(ExperimentConfig::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Whether a dotted key (`training.lr`) starts with one of `sections`, in any case.
fn names_a_section(key: &str, sections: &[String]) -> bool {
    let first = key.split('.').next().unwrap_or_default();
    sections.iter().any(|s| s.eq_ignore_ascii_case(first))
}

/// Splits `a.b=c` and parses `c` as a TOML value (`1e-4`, `true`, `["a", "b"]`), falling back to
/// the plain string (`dpo`).
fn parse_override(item: &str) -> Result<(String, toml::Value)> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| Error::Usage(format!("--set {item:?} is not of the form key.path=value")))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(Error::Usage(format!("--set {item:?} has an empty key")));
    }
    let raw = raw.trim();
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    // Nest `a.b.c = v` as a -> {b: {c: v}} so it merges into the tree under `a`.
    let mut parts: Vec<&str> = key.split('.').collect();
    let top = parts.remove(0).to_owned();
    let mut value = value;
    for part in parts.iter().rev() {
        value = toml::Value::Table(toml::Table::from_iter([((*part).to_owned(), value)]));
    }
    Ok((top, value))
}

/// One figment error per line, each with its key path (figment's own `Display` names the
/// provider, e.g. the file).
fn figment_message(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Resolves `path` against `base` unless it is absolute.
pub fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod paper_tests;
#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod tests;

//! One run directory's identity: method, aggregator, seed, partitioner and model, taken from
//! its resolved `config.toml`, then `manifest.json`, then the directory name
//! (`<method>-<aggregator>-s<seed>`), and the parts of the manifest the report shows.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
};

use fedpref_rundir::{Manifest, PartitionSummary, PrivacySummary};

use super::Problem;

/// A run directory and what it says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The directory name, e.g. `dpo-fedavg-s0`.
    pub name: String,
    /// The directory.
    pub path: PathBuf,
    /// Loss component (`dpo`, `kto`, `ktor`, ...).
    pub method: String,
    /// Aggregator component (`fedavg`, ...).
    pub aggregator: String,
    /// Seed.
    pub seed: u64,
    /// Partitioner actually used (from the manifest; else the configured one).
    pub partitioner: Option<String>,
    /// The model file or directory name, e.g. `SmolLM2-135M-Instruct.Q4_1.gguf`.
    pub model: Option<String>,
    /// `running`, `complete` or `failed` (from the manifest).
    pub status: Option<String>,
    /// Rounds finished and checkpointed (from the manifest).
    pub rounds_completed: Option<u32>,
    /// Rounds configured (`federation.rounds`).
    pub rounds_planned: Option<u32>,
    /// The resolved config, when it could be read.
    pub config: Option<toml::Table>,
    /// The client split, when the manifest could be read and has one.
    pub partition: Option<PartitionSummary>,
    /// The differential privacy guarantee, when the manifest has one.
    pub privacy: Option<PrivacySummary>,
}

impl Run {
    /// Reads the identity of the run in `path`, adding a [`Problem`] for a missing or corrupt
    /// `config.toml` or `manifest.json`.
    pub fn read(path: &Path, problems: &mut Vec<Problem>) -> Run {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let config = read_config(&path.join("config.toml"), problems);
        let manifest = read_manifest(&path.join("manifest.json"), problems);
        let from_name = parse_dir_name(&name);
        let single = |section: &str, key: &str| -> Option<toml::Value> {
            let list = config.as_ref()?.get(section)?.get(key)?.as_array()?;
            (list.len() == 1).then(|| list[0].clone())
        };
        let component = |role: &str| {
            manifest
                .as_ref()
                .and_then(|m| m.components.get(role))
                .map(|c| c.name.clone())
        };
        let method = single("experiment", "methods")
            .and_then(|v| v.as_str().map(str::to_owned))
            .or_else(|| component("loss"))
            .or_else(|| from_name.as_ref().map(|n| n.0.clone()));
        let aggregator = single("experiment", "aggregators")
            .and_then(|v| v.as_str().map(str::to_owned))
            .or_else(|| component("aggregator"))
            .or_else(|| from_name.as_ref().map(|n| n.1.clone()));
        let seed = single("experiment", "seeds")
            .and_then(|v| v.as_integer())
            .and_then(|s| u64::try_from(s).ok())
            .or_else(|| manifest.as_ref().map(|m| m.seed))
            .or_else(|| from_name.as_ref().map(|n| n.2));
        if method.is_none() || aggregator.is_none() || seed.is_none() {
            problems.push(Problem::file(
                path,
                "cannot tell this run's method, aggregator and seed (no readable config.toml or \
                 manifest.json, and the name is not <method>-<aggregator>-s<seed>); shown as `unknown`",
            ));
        }
        let lookup = |section: &str, key: &str| config.as_ref()?.get(section)?.get(key).cloned();
        let partition = manifest
            .as_ref()
            .map(|m| m.partition.clone())
            .filter(|p| !p.partitioner.is_empty() || !p.clients.is_empty());
        let partitioner = partition
            .as_ref()
            .map(|p| p.partitioner.clone())
            .filter(|p| !p.is_empty())
            .or_else(|| component("partitioner"))
            .or_else(|| lookup("partition", "name").and_then(|v| v.as_str().map(str::to_owned)));
        let model = lookup("model", "path").and_then(|v| {
            let path = PathBuf::from(v.as_str()?);
            path.file_name().map(|n| n.to_string_lossy().into_owned())
        });
        Run {
            name,
            path: path.to_path_buf(),
            method: method.unwrap_or_else(|| "unknown".into()),
            aggregator: aggregator.unwrap_or_else(|| "unknown".into()),
            seed: seed.unwrap_or(0),
            partitioner,
            model,
            status: manifest.as_ref().map(|m| m.status.as_str().to_owned()),
            rounds_completed: manifest.as_ref().map(|m| m.rounds_completed),
            rounds_planned: lookup("federation", "rounds")
                .and_then(|v| v.as_integer())
                .and_then(|r| u32::try_from(r).ok()),
            partition,
            privacy: manifest.as_ref().and_then(|m| m.privacy.clone()),
            config,
        }
    }
}

fn read_config(path: &Path, problems: &mut Vec<Problem>) -> Option<toml::Table> {
    match std::fs::read_to_string(path) {
        Ok(text) => match text.parse::<toml::Table>() {
            Ok(table) => Some(table),
            Err(e) => {
                let message = e.to_string().lines().next().unwrap_or_default().to_owned();
                problems.push(Problem::file(
                    path,
                    format!("not valid TOML ({message}); config columns left empty"),
                ));
                None
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {
            problems.push(Problem::file(path, "missing; config columns left empty"));
            None
        }
        Err(e) => {
            problems.push(Problem::file(
                path,
                format!("cannot read it ({e}); config columns left empty"),
            ));
            None
        }
    }
}

fn read_manifest(path: &Path, problems: &mut Vec<Problem>) -> Option<Manifest> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(manifest) => Some(manifest),
            Err(e) => {
                problems.push(Problem::file(
                    path,
                    format!("not a valid manifest ({e}); status and partition unknown"),
                ));
                None
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {
            problems.push(Problem::file(path, "missing; status and partition unknown"));
            None
        }
        Err(e) => {
            problems.push(Problem::file(
                path,
                format!("cannot read it ({e}); status and partition unknown"),
            ));
            None
        }
    }
}

/// `dpo-fedavg-s3` -> (`dpo`, `fedavg`, 3). Method names have no dash; aggregator names may.
fn parse_dir_name(name: &str) -> Option<(String, String, u64)> {
    let (rest, seed) = name.rsplit_once("-s")?;
    let seed = seed.parse().ok()?;
    let (method, aggregator) = rest.split_once('-')?;
    (!method.is_empty() && !aggregator.is_empty())
        .then(|| (method.to_owned(), aggregator.to_owned(), seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_parse() {
        assert_eq!(
            parse_dir_name("dpo-fedavg-s0"),
            Some(("dpo".into(), "fedavg".into(), 0))
        );
        assert_eq!(
            parse_dir_name("kto-trimmed-mean-s12"),
            Some(("kto".into(), "trimmed-mean".into(), 12))
        );
        assert_eq!(parse_dir_name("cache"), None);
        assert_eq!(parse_dir_name("dpo-s1"), None);
    }

    #[test]
    fn identity_falls_back_to_the_manifest_then_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("kto-fedprox-s4");
        std::fs::create_dir_all(&run_dir).unwrap();
        std::fs::write(
            run_dir.join("manifest.json"),
            r#"{"components": {"loss": {"name": "ktor"}}, "seed": 9, "status": "running",
                "partition": {"partitioner": "redistribute", "units": [3, 2], "clients": [[0, 2, 1], [0, 1, 1]]}}"#,
        )
        .unwrap();
        let mut problems = Vec::new();
        let run = Run::read(&run_dir, &mut problems);
        assert_eq!(
            (run.method.as_str(), run.aggregator.as_str(), run.seed),
            ("ktor", "fedprox", 9)
        );
        assert_eq!(run.partitioner.as_deref(), Some("redistribute"));
        assert_eq!(run.partition.unwrap().clients, vec![[0, 2, 1], [0, 1, 1]]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].path.ends_with("config.toml"));
    }
}

//! What a checkpoint holds and how it is read back: the global adapter (as PEFT files for users
//! and as raw little-endian f32 for bit-exact resumes), the aggregator's state, each client's
//! optimizer state (when kept across rounds), what compressed links carry (error-feedback
//! residuals, the clients' model under downlink compression), and the lengths of the metrics
//! files.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use fedpref_rundir::write_atomic;

use crate::{train::OptimizerState, Error, Result};

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The round this checkpoint completes (0-based).
    pub round: u32,
    /// Byte length of `metrics/steps.jsonl` after this round.
    pub steps_len: u64,
    /// Byte length of `metrics/rounds.jsonl` after this round.
    pub rounds_len: u64,
    /// Number of trainable parameters.
    pub n_params: usize,
    /// The clip norm of the next round, where adaptive clipping moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
    /// Bytes of each round's downlink broadcast, under downlink compression.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broadcasts: Vec<u64>,
    /// Under downlink compression, each client's first broadcast not yet received.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub synced: BTreeMap<u32, u32>,
}

/// Everything restored from a checkpoint.
#[derive(Debug)]
pub struct Restored {
    /// The checkpoint's state file.
    pub state: CheckpointState,
    /// Global flat parameters.
    pub global: Vec<f32>,
    /// Aggregator state bytes.
    pub aggregator: Vec<u8>,
    /// Optimizer states by client.
    pub optimizers: BTreeMap<u32, OptimizerState>,
    /// Error-feedback residuals by client, and the clients' model under downlink compression.
    pub links: LinkVectors,
}

/// Error-feedback residuals by client, and the clients' model under downlink compression.
pub type LinkVectors = (BTreeMap<u32, Vec<f32>>, Option<Vec<f32>>);

/// Raw little-endian `f32`s.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32s(path: &Path, bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: "length is not a multiple of 4 bytes".to_owned(),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Writes the checkpoint files into `dir` (a temporary directory the caller renames).
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write(
    dir: &Path,
    state: &CheckpointState,
    global: &[f32],
    aggregator: &[u8],
    optimizers: &BTreeMap<u32, OptimizerState>,
    (residuals, public): (&BTreeMap<u32, Vec<f32>>, Option<&[f32]>),
) -> Result<()> {
    write_atomic(&dir.join("global.f32"), &f32_bytes(global))?;
    if !residuals.is_empty() || public.is_some() {
        // Records of (tag, client, length, f32s): tag 0 the clients' model, 1 a residual.
        let mut links = Vec::new();
        let records = public
            .map(|p| (0u8, 0u32, p))
            .into_iter()
            .chain(residuals.iter().map(|(c, r)| (1u8, *c, r.as_slice())));
        for (tag, client, values) in records {
            links.push(tag);
            links.extend_from_slice(&client.to_le_bytes());
            links.extend_from_slice(&(values.len() as u64).to_le_bytes());
            links.extend(f32_bytes(values));
        }
        write_atomic(&dir.join("links.bin"), &links)?;
    }
    write_atomic(&dir.join("aggregator.bin"), aggregator)?;
    let mut clients = Vec::new();
    for (client, o) in optimizers {
        clients.extend_from_slice(&client.to_le_bytes());
        clients.extend_from_slice(&(o.step as u64).to_le_bytes());
        clients.extend_from_slice(&(o.m.len() as u64).to_le_bytes());
        clients.extend(f32_bytes(&o.m));
        clients.extend(f32_bytes(&o.v));
    }
    write_atomic(&dir.join("clients.bin"), &clients)?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Json {
        path: dir.join("state.json"),
        message: e.to_string(),
    })?;
    Ok(write_atomic(&dir.join("state.json"), &json)?)
}

/// Reads a checkpoint written by [`write`].
///
/// # Errors
/// [`Error::Io`] or [`Error::Checkpoint`] naming the file.
pub fn read(dir: &Path) -> Result<Restored> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| Error::io(&path, e))
    };
    let state_path = dir.join("state.json");
    let state: CheckpointState =
        serde_json::from_slice(&read("state.json")?).map_err(|e| Error::Checkpoint {
            path: state_path.clone(),
            message: e.to_string(),
        })?;
    let global = f32s(&dir.join("global.f32"), &read("global.f32")?)?;
    if global.len() != state.n_params {
        return Err(Error::Checkpoint {
            path: dir.join("global.f32"),
            message: format!(
                "{} parameters, state.json says {}",
                global.len(),
                state.n_params
            ),
        });
    }
    let clients_path = dir.join("clients.bin");
    let bytes = read("clients.bin")?;
    let mut optimizers = BTreeMap::new();
    let mut at = 0;
    let truncated = || Error::Checkpoint {
        path: clients_path.clone(),
        message: "truncated".to_owned(),
    };
    let take = |at: &mut usize, n: usize| -> Result<&[u8]> {
        let slice = bytes.get(*at..*at + n).ok_or_else(truncated)?;
        *at += n;
        Ok(slice)
    };
    while at < bytes.len() {
        let client = u32::from_le_bytes(take(&mut at, 4)?.try_into().expect("4 bytes"));
        let step = u64::from_le_bytes(take(&mut at, 8)?.try_into().expect("8 bytes")) as usize;
        let n = u64::from_le_bytes(take(&mut at, 8)?.try_into().expect("8 bytes")) as usize;
        let m = f32s(&clients_path, take(&mut at, 4 * n)?)?;
        let v = f32s(&clients_path, take(&mut at, 4 * n)?)?;
        optimizers.insert(client, OptimizerState { m, v, step });
    }
    Ok(Restored {
        state,
        global,
        aggregator: read("aggregator.bin")?,
        optimizers,
        links: read_links(&dir.join("links.bin"))?,
    })
}

/// The records of `links.bin` ([`write`]); none when the file is absent.
fn read_links(path: &Path) -> Result<LinkVectors> {
    let (mut residuals, mut public) = (BTreeMap::new(), None);
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((residuals, public)),
        Err(e) => return Err(Error::io(path, e)),
    };
    let damaged = |message: &str| Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.to_owned(),
    };
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let (head, tail) = rest
            .split_at_checked(13)
            .ok_or_else(|| damaged("truncated"))?;
        let client = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes"));
        let n = u64::from_le_bytes(head[5..13].try_into().expect("8 bytes")) as usize;
        let (values, tail) = tail
            .split_at_checked(4 * n)
            .ok_or_else(|| damaged("truncated"))?;
        let values = f32s(path, values)?;
        match head[0] {
            0 => public = Some(values),
            1 => {
                residuals.insert(client, values);
            }
            tag => return Err(damaged(&format!("unknown record tag {tag}"))),
        }
        rest = tail;
    }
    Ok((residuals, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_bit_for_bit() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = CheckpointState {
            round: 3,
            steps_len: 120,
            rounds_len: 40,
            n_params: 3,
            clip_norm: Some(0.123_456_789_012_345_67),
            broadcasts: vec![16, 16, 20],
            synced: BTreeMap::from([(1, 2), (4, 3)]),
        };
        let global = vec![1.5f32, -0.0, f32::MIN_POSITIVE];
        let optimizers = BTreeMap::from([
            (
                2u32,
                OptimizerState {
                    m: vec![0.1, 0.2, 0.3],
                    v: vec![1e-8, 2e-8, 3e-8],
                    step: 7,
                },
            ),
            (
                5u32,
                OptimizerState {
                    m: vec![0.0; 3],
                    v: vec![0.5; 3],
                    step: 1,
                },
            ),
        ]);
        let residuals = BTreeMap::from([(2u32, vec![1e-3f32, -2e-3, 0.0]), (7, vec![0.5; 3])]);
        let public = [0.25f32, -1.0, 3.0];
        write(
            dir.path(),
            &state,
            &global,
            b"agg",
            &optimizers,
            (&residuals, Some(&public)),
        )
        .expect("write");
        let restored = read(dir.path()).expect("read");
        assert_eq!(restored.state, state);
        assert_eq!(f32_bytes(&restored.global), f32_bytes(&global));
        assert_eq!(restored.aggregator, b"agg");
        assert_eq!(restored.optimizers, optimizers);
        assert_eq!(restored.links, (residuals, Some(public.to_vec())));
    }

    #[test]
    fn a_damaged_checkpoint_names_the_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = CheckpointState {
            round: 0,
            steps_len: 0,
            rounds_len: 0,
            n_params: 2,
            clip_norm: None,
            broadcasts: Vec::new(),
            synced: BTreeMap::new(),
        };
        let no_links = (&BTreeMap::new(), None);
        write(
            dir.path(),
            &state,
            &[1.0, 2.0, 3.0],
            b"",
            &BTreeMap::new(),
            no_links,
        )
        .expect("write");
        let error = read(dir.path())
            .expect_err("3 parameters for 2")
            .to_string();
        assert!(
            error.contains("global.f32") && error.contains("3 parameters"),
            "{error}"
        );
    }
}

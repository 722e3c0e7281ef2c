//! Held-out evaluation data, set aside before partitioning: either a separate file
//! (`eval_path`) or a seeded random share of the training file (`eval_fraction`).
//!
//! The split draws from its own ChaCha8 stream of the run seed, so it does not change when the
//! partitioner or its parameters do; both parts keep file order.

use std::path::Path;

use rand::{seq::index::sample, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{config::DataConfig, dataset::Dataset, load::load};
use crate::{Error, Result};

/// The ChaCha8 stream the split draws from (the run seed picks the key).
const EVAL_STREAM: u64 = 0x6576_616c; // "eval"

/// Training data and the optional held-out data.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// What the partitioner deals out.
    pub train: Dataset,
    /// What evaluation scores; `None` when neither `eval_path` nor `eval_fraction` is set.
    pub eval: Option<Dataset>,
}

/// Loads `config.path` and its held-out part under `seed`.
///
/// # Errors
/// [`Error::DataConfig`] when `path` is unset or a setting is out of range; any loading error of
/// either file; see [`split_eval`].
pub fn load_splits(config: &DataConfig, seed: u64) -> Result<Splits> {
    config.validate()?;
    let Some(path) = config.path.as_deref() else {
        return Err(Error::DataConfig {
            key: "path",
            message: "is not set; name the training data file".to_owned(),
        });
    };
    let mut train = load(path, config)?;
    if let Some(limit) = config.limit.filter(|&l| l < train.len()) {
        train = train.subset(&(0..limit).collect::<Vec<_>>());
    }
    match (config.eval_path.as_deref(), config.eval_fraction) {
        (Some(eval_path), _) => Ok(Splits {
            train,
            eval: Some(load(eval_path, config)?),
        }),
        (None, fraction) if fraction > 0.0 => {
            let (train, eval) = split_eval(&train, fraction, seed)?;
            Ok(Splits {
                train,
                eval: Some(eval),
            })
        }
        (None, _) => Ok(Splits { train, eval: None }),
    }
}

/// Splits `dataset` into (train, eval) with `round(fraction * n)` (at least 1) examples chosen
/// uniformly at random for eval.
///
/// # Errors
/// [`Error::DataConfig`] when `fraction` is outside (0, 1) or would leave no training example.
pub fn split_eval(dataset: &Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::DataConfig {
            key: "eval_fraction",
            message: format!("{fraction} is outside (0, 1)"),
        });
    }
    let n = dataset.len();
    let n_eval = ((fraction * n as f64).round() as usize).max(1);
    if n_eval >= n {
        return Err(Error::DataConfig {
            key: "eval_fraction",
            message: format!(
                "{fraction} of {n} examples in {} leaves nothing to train on; lower it or add data",
                path_display(&dataset.path)
            ),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(EVAL_STREAM);
    let mut is_eval = vec![false; n];
    for i in sample(&mut rng, n, n_eval) {
        is_eval[i] = true;
    }
    let (eval, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| is_eval[i]);
    Ok((dataset.subset(&train), dataset.subset(&eval)))
}

fn path_display(path: &Path) -> String {
    path.display().to_string()
}

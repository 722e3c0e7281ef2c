//! What losses over (chosen, rejected) pairs share: the input checks before any arithmetic and
//! TRL's reward statistics over the pairs.
//!
//! Plain Rust for plugin authors, not part of the ABI. DPO and SimPO use both; a new paired loss
//! starts its `evaluate` with [`validated_pairs`] and reports [`reward_metrics`] with its own
//! reward (DPO's `β·(logπ − logπ_ref)`, SimPO's length-normalized `β·logπ/|y|`).

use crate::{math::mean, Label, LossBatch, LossSpec, Metric, PluginError};

/// Checks `batch` for the paired loss `loss` (its name, for messages) and returns its
/// `(chosen, rejected)` index pairs in order of the chosen index.
///
/// In order: [`LossBatch::validate`] (lengths, symmetric pairs with opposite labels, token
/// counts, the arrays `spec` asks for), every sequence in a pair, then
/// [`LossBatch::check_finite`].
///
/// # Errors
/// `InvalidInput` naming the first bad sequence, e.g. `sequence 6 (chosen) has no partner
/// (pair[6] = -1); dpo needs every sequence in a (chosen, rejected) pair`.
pub fn validated_pairs(
    batch: &LossBatch<'_>,
    spec: &LossSpec,
    loss: &str,
) -> Result<Vec<(usize, usize)>, PluginError> {
    batch.validate(spec)?;
    if let Some(i) = batch.pair.iter().position(|&p| p < 0) {
        let label = match batch.labels[i] {
            Label::Chosen => "chosen",
            Label::Rejected => "rejected",
        };
        return Err(PluginError::invalid_input(format!(
            "sequence {i} ({label}) has no partner (pair[{i}] = {}); {loss} needs every sequence in a (chosen, rejected) pair",
            batch.pair[i]
        )));
    }
    batch.check_finite(spec)?;
    Ok(batch.pairs())
}

/// TRL's reward metrics over `pairs`, with `reward(i)` the implicit reward of sequence `i`:
/// `rewards/chosen` and `rewards/rejected` (mean rewards), `rewards/margins` (mean of chosen
/// minus rejected) and `rewards/accuracies` (share of pairs whose chosen reward is strictly
/// larger). Each is NaN ("not defined") without pairs.
pub fn reward_metrics(pairs: &[(usize, usize)], reward: impl Fn(usize) -> f64) -> Vec<Metric> {
    let accuracy = |c: usize, r: usize| if reward(c) > reward(r) { 1.0 } else { 0.0 };
    vec![
        Metric::new(
            "rewards/chosen",
            mean(pairs.iter().map(|&(c, _)| reward(c))),
        ),
        Metric::new(
            "rewards/rejected",
            mean(pairs.iter().map(|&(_, r)| reward(r))),
        ),
        Metric::new(
            "rewards/margins",
            mean(pairs.iter().map(|&(c, r)| reward(c) - reward(r))),
        ),
        Metric::new(
            "rewards/accuracies",
            mean(pairs.iter().map(|&(c, r)| accuracy(c, r))),
        ),
    ]
}

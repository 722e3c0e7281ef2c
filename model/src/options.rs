//! Reading a verdict through probabilities: `log P(option)` for a fixed set of options (the
//! scores `1` … `10`, or `A`, `B`, `C`) after a prompt, at one or several positions.
//!
//! [`option_logprobs`] is the plain form over any "next-token log-probs after these ids"
//! function, one fresh forward per distribution; [`QuantizedModel::option_logprobs`]
//! (crate::QuantizedModel) is the cached fast path, and a test holds the two equal.

use crate::{Error, Result};

/// `log P(option)` for every option at each of `positions` positions, position-major: at the
/// first the options follow `ids`; position `k + 1` follows position `k`'s most likely option
/// and `separator`. `next_logprobs(ids)` returns the log-probabilities of the token after
/// `ids`, over the whole vocabulary.
///
/// # Errors
/// [`Error::ModelInput`] for no options, an empty option, or options of several tokens that
/// branch (see [`continuation_path`]); whatever `next_logprobs` returns.
pub fn option_logprobs(
    mut next_logprobs: impl FnMut(&[u32]) -> Result<Vec<f32>>,
    ids: &[u32],
    options: &[Vec<u32>],
    positions: usize,
    separator: &[u32],
) -> Result<Vec<f64>> {
    let path = continuation_path(options)?;
    let mut context = ids.to_vec();
    let mut values = Vec::with_capacity(positions * options.len());
    for position in 0..positions {
        let mut dists = Vec::with_capacity(path.len());
        for k in 0..path.len() {
            let prefix: Vec<u32> = context.iter().chain(&path[..k]).copied().collect();
            dists.push(next_logprobs(&prefix)?);
        }
        let read = read_options(&dists, options)?;
        let best = &options[argmax_f64(&read)];
        values.extend(read);
        if position + 1 < positions {
            context.extend(best.iter().chain(separator));
        }
    }
    Ok(values)
}

/// The longest option, when every option is a prefix of it (the tokens fed after the prompt to
/// score them all: `1` and `10` are tokens `1`, then `1 0`); options of one token need no path.
///
/// # Errors
/// [`Error::ModelInput`] for no options, an empty option, or two options of several tokens
/// that branch.
pub fn continuation_path(options: &[Vec<u32>]) -> Result<Vec<u32>> {
    let longest = options
        .iter()
        .max_by_key(|o| o.len())
        .ok_or_else(|| Error::input("no option to score"))?;
    for option in options {
        if option.is_empty() {
            return Err(Error::input("an option has no tokens"));
        }
        if option.len() > 1 && !longest.starts_with(option) {
            return Err(Error::input(
                "options of several tokens must each be a prefix of the longest one",
            ));
        }
    }
    Ok(longest.clone())
}

/// Each option's log-probability from the distributions along the path: token `k` of an
/// option is read from `dists[k]`.
pub(crate) fn read_options(dists: &[Vec<f32>], options: &[Vec<u32>]) -> Result<Vec<f64>> {
    options
        .iter()
        .map(|option| {
            option
                .iter()
                .enumerate()
                .map(|(k, &token)| {
                    dists[k]
                        .get(token as usize)
                        .map(|&lp| f64::from(lp))
                        .ok_or_else(|| Error::input(format!("token id {token} out of range")))
                })
                .sum()
        })
        .collect()
}

/// The index of the largest value (the first on ties).
pub(crate) fn argmax_f64(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// `log softmax` of one logits row, in f32 with the max subtracted.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln() + max;
    logits.iter().map(|&x| x - log_sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy "model": the next token's log-probs depend on the last id only.
    fn toy(ids: &[u32]) -> Result<Vec<f32>> {
        let last = *ids.last().expect("non-empty") as f32;
        let logits: Vec<f32> = (0..8).map(|t| ((t as f32) * 0.7 + last).sin()).collect();
        Ok(log_softmax(&logits))
    }

    #[test]
    fn options_of_two_tokens_add_the_second_tokens_logprob() {
        let got = option_logprobs(toy, &[3], &[vec![1], vec![1, 5], vec![2]], 1, &[]).unwrap();
        let (first, second) = (toy(&[3]).unwrap(), toy(&[3, 1]).unwrap());
        let expected = [
            f64::from(first[1]),
            f64::from(first[1]) + f64::from(second[5]),
            f64::from(first[2]),
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn the_second_position_follows_the_best_option_and_the_separator() {
        let options = [vec![1], vec![2], vec![4]];
        let got = option_logprobs(toy, &[3], &options, 2, &[7]).unwrap();
        let first = option_logprobs(toy, &[3], &options, 1, &[]).unwrap();
        let best = &options[argmax_f64(&first)];
        let context: Vec<u32> = [3].iter().chain(best).chain(&[7]).copied().collect();
        let second = option_logprobs(toy, &context, &options, 1, &[]).unwrap();
        assert_eq!(got, [first, second].concat());
    }

    #[test]
    fn branching_or_empty_options_are_refused() {
        assert!(option_logprobs(toy, &[3], &[vec![1, 2], vec![3, 4]], 1, &[]).is_err());
        assert!(option_logprobs(toy, &[3], &[vec![]], 1, &[]).is_err());
        assert!(option_logprobs(toy, &[3], &[], 1, &[]).is_err());
    }
}

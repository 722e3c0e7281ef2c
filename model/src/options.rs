//! Reading a verdict through probabilities: `log P(option)` for a fixed set of options (the
//! scores `1` … `10`, or `A`, `B`, `C`) after a prompt, at one or several positions.
//!
//! [`option_logprobs`] is the plain form over any "next-token log-probs after these ids"
//! function, one fresh forward per distribution; [`QuantizedModel::option_logprobs`]
//! (crate::QuantizedModel) is the cached fast path, and a test holds the two equal.

use candle_core::{DType, Tensor};

use crate::{Decoder, Error, KvCache, Result};

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

/// [`option_logprobs`] with `decoder` and a KV cache: the prompt runs once, each option path
/// continues the cache, and the cache steps back ([`KvCache::truncate`]) before the chosen
/// option and the separator are fed. The cached fast path of a full-precision judge; a test
/// holds it equal to the plain form.
///
/// # Errors
/// As [`option_logprobs`]; [`Error::ModelInput`] for an empty prompt.
pub fn decoder_option_logprobs(
    decoder: &Decoder,
    ids: &[u32],
    options: &[Vec<u32>],
    positions: usize,
    separator: &[u32],
) -> Result<Vec<f64>> {
    if ids.is_empty() {
        return Err(Error::input("an empty prompt has no next token"));
    }
    let path = continuation_path(options)?;
    let mut cache = KvCache::new(decoder.layers().len());
    let feed = |tokens: &[u32], cache: &mut KvCache| -> Result<Vec<f32>> {
        let input = Tensor::new(tokens, decoder.device())?.unsqueeze(0)?;
        let logits: Vec<f32> = decoder
            .last_logits(&input, Some(cache))?
            .squeeze(0)?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        Ok(log_softmax(&logits))
    };
    let mut dist = feed(ids, &mut cache)?;
    let mut values = Vec::with_capacity(positions * options.len());
    for position in 0..positions {
        let context = cache.len();
        let mut dists = vec![dist];
        for &token in &path[..path.len() - 1] {
            dists.push(feed(&[token], &mut cache)?);
        }
        let read = read_options(&dists, options)?;
        let best = &options[argmax_f64(&read)];
        values.extend(read);
        if position + 1 == positions {
            break;
        }
        cache.truncate(context)?;
        let next: Vec<u32> = best.iter().chain(separator).copied().collect();
        dist = feed(&next, &mut cache)?;
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
    fn the_cached_decoder_path_equals_full_forwards() {
        use candle_core::Device;
        use candle_nn::VarBuilder;

        use crate::testing::{random_weights, tiny_config};
        let cfg = tiny_config();
        let weights = random_weights(&cfg, 5, DType::F32);
        let decoder = Decoder::load(
            VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
            &cfg,
        )
        .unwrap();
        let full = |ids: &[u32]| -> Result<Vec<f32>> {
            let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
            let logits: Vec<f32> = decoder.last_logits(&input, None)?.squeeze(0)?.to_vec1()?;
            Ok(log_softmax(&logits))
        };
        // A path of two tokens ("1", "1 0") beside one-token options, over three positions, so
        // the best option sometimes leaves the path and the cache must step back.
        let options = [vec![1], vec![2], vec![3], vec![1, 4]];
        for prompt in [vec![5u32, 9, 2, 7], vec![11, 3], vec![8, 8, 8, 1, 6, 2]] {
            let plain = option_logprobs(full, &prompt, &options, 3, &[6]).unwrap();
            let cached = decoder_option_logprobs(&decoder, &prompt, &options, 3, &[6]).unwrap();
            assert_eq!(plain.len(), cached.len());
            for (p, c) in plain.iter().zip(&cached) {
                assert!((p - c).abs() < 1e-4, "{plain:?}\n{cached:?}");
            }
        }
        assert!(decoder_option_logprobs(&decoder, &[], &options, 1, &[]).is_err());
    }

    #[test]
    fn branching_or_empty_options_are_refused() {
        assert!(option_logprobs(toy, &[3], &[vec![1, 2], vec![3, 4]], 1, &[]).is_err());
        assert!(option_logprobs(toy, &[3], &[vec![]], 1, &[]).is_err());
        assert!(option_logprobs(toy, &[3], &[], 1, &[]).is_err());
    }
}

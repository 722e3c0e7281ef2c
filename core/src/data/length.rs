//! Fitting tokenized examples into `max_length`, as TRL's DPO and KTO trainers do.
//!
//! With `L = max_length`, `P = max_prompt_length` and `a` the longest answer of the example
//! (both answers of a pair are cut alike so they stay comparable):
//! 1. if `len(prompt) + a > L`, keep the last `P` prompt tokens (TRL `truncation_mode =
//!    "keep_end"`: the end of a conversation is what the answer replies to);
//! 2. if still `len(prompt) + a > L`, keep the first `L - P` tokens of every answer.
//!
//! The result never exceeds `L` (given `P < L`, which [`super::DataConfig::validate`] checks).
//! With `overlong = "drop"` an example that needs step 1 or 2 is left out instead. Everything
//! here works on token ids (`&[u32]`), so it is independent of the tokenizer.

use serde::{Deserialize, Serialize};

use super::config::Overlong;

/// The limits, in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthLimits {
    /// Most tokens of prompt plus the longest answer.
    pub max_length: usize,
    /// Most prompt tokens kept when the prompt is truncated.
    pub max_prompt_length: usize,
}

/// Token ids of one example after fitting: slices of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted<'a> {
    /// `(n_prompt,)` prompt ids.
    pub prompt: &'a [u32],
    /// One `(n_answer,)` slice per input answer, in input order.
    pub answers: Vec<&'a [u32]>,
}

/// What happened to one example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit<'a> {
    /// It fitted as it was.
    Kept(Fitted<'a>),
    /// It was truncated to fit.
    Truncated(Fitted<'a>),
    /// It was too long and `overlong = "drop"`.
    Dropped,
}

/// Fits `prompt` and `answers` (one for a single answer, two for a pair) into `limits`.
pub fn fit_lengths<'a>(
    prompt: &'a [u32],
    answers: &[&'a [u32]],
    limits: LengthLimits,
    overlong: Overlong,
) -> Fit<'a> {
    let longest = answers.iter().map(|a| a.len()).max().unwrap_or(0);
    if prompt.len() + longest <= limits.max_length {
        return Fit::Kept(Fitted {
            prompt,
            answers: answers.to_vec(),
        });
    }
    if overlong == Overlong::Drop {
        return Fit::Dropped;
    }
    let prompt = &prompt[prompt.len().saturating_sub(limits.max_prompt_length)..];
    let answers = if prompt.len() + longest > limits.max_length {
        let keep = limits.max_length.saturating_sub(limits.max_prompt_length);
        answers.iter().map(|a| &a[..a.len().min(keep)]).collect()
    } else {
        answers.to_vec()
    };
    Fit::Truncated(Fitted { prompt, answers })
}

/// How many examples were kept, truncated or dropped (for the run manifest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LengthCounts {
    /// Fitted as they were.
    pub kept: usize,
    /// Truncated to fit.
    pub truncated: usize,
    /// Left out.
    pub dropped: usize,
}

impl LengthCounts {
    /// Counts `fit`.
    pub fn record(&mut self, fit: &Fit<'_>) {
        match fit {
            Fit::Kept(_) => self.kept += 1,
            Fit::Truncated(_) => self.truncated += 1,
            Fit::Dropped => self.dropped += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: LengthLimits = LengthLimits {
        max_length: 10,
        max_prompt_length: 4,
    };

    fn ids(n: u32) -> Vec<u32> {
        (0..n).collect()
    }

    #[test]
    fn short_examples_are_kept() {
        let (p, a) = (ids(6), ids(4));
        assert_eq!(
            fit_lengths(&p, &[&a], LIMITS, Overlong::Truncate),
            Fit::Kept(Fitted {
                prompt: &p,
                answers: vec![&a]
            })
        );
    }

    #[test]
    fn the_prompt_loses_its_start_first() {
        let (p, a, b) = (ids(9), ids(5), ids(3));
        let Fit::Truncated(f) = fit_lengths(&p, &[&a, &b], LIMITS, Overlong::Truncate) else {
            panic!("not truncated")
        };
        assert_eq!(f.prompt, &[5, 6, 7, 8]);
        assert_eq!(f.answers, vec![&a[..], &b[..]]);
    }

    #[test]
    fn then_the_answers_lose_their_ends() {
        let (p, a, b) = (ids(9), ids(8), ids(7));
        let Fit::Truncated(f) = fit_lengths(&p, &[&a, &b], LIMITS, Overlong::Truncate) else {
            panic!("not truncated")
        };
        assert_eq!(f.prompt.len(), 4);
        assert_eq!(f.answers, vec![&a[..6], &b[..6]]);
        // A short prompt is kept whole and the answers are still cut to L - P, as in TRL.
        let (p, a) = (ids(2), ids(9));
        let Fit::Truncated(f) = fit_lengths(&p, &[&a], LIMITS, Overlong::Truncate) else {
            panic!("not truncated")
        };
        assert_eq!((f.prompt.len(), f.answers[0].len()), (2, 6));
    }

    #[test]
    fn every_fit_is_within_max_length_and_drop_counts() {
        let mut counts = LengthCounts::default();
        for np in 0..14 {
            for na in 0..14 {
                let (p, a) = (ids(np), ids(na));
                for mode in [Overlong::Truncate, Overlong::Drop] {
                    let fit = fit_lengths(&p, &[&a], LIMITS, mode);
                    if let Fit::Kept(f) | Fit::Truncated(f) = &fit {
                        assert!(f.prompt.len() + f.answers[0].len() <= 10, "{np} + {na}");
                        assert_eq!(
                            f.prompt,
                            &p[p.len() - f.prompt.len()..],
                            "the prompt keeps its end"
                        );
                    }
                    if mode == Overlong::Drop {
                        counts.record(&fit);
                    }
                }
            }
        }
        // Pairs (np, na) with np + na <= 10: 66 of 196.
        assert_eq!(
            counts,
            LengthCounts {
                kept: 66,
                truncated: 0,
                dropped: 130
            }
        );
    }
}

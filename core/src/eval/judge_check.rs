//! The judge check (`fedpref judge check`): how often a judge prefers the better of two answers
//! whose order is known, before its scores are read as results.
//!
//! The better answer of each pair is a benchmark's reference answer (GPT-4's, shipped with
//! MT-Bench and the Vicuna bench); the worse one is made from it in one of three ways, in turn:
//! - `off-topic`: the reference answer to another question (half the set away, so another
//!   topic);
//! - `evasive`: a fixed non-answer that commits to nothing;
//! - `truncated`: the first fifth of the reference's words (references of 60 words or more;
//!   shorter ones get an evasive answer instead).
//!
//! These are easy cases: a judge that fails them cannot rank fine-tuned models; one that passes
//! them is not thereby shown to rank close answers well. In single mode a pair agrees when the
//! better answer's rating is higher (a tie counts half); in pair mode each order's verdict
//! agrees when it prefers the better answer (a tie counts half), and a pair is position-
//! consistent when both orders' most likely verdicts agree; in multi mode (the paper's
//! JudgeLM prompt) both answers share one prompt, judged in both orders, and a pair agrees
//! when the better answer's mean score is higher (a tie counts half).

use std::collections::BTreeMap;

use fedpref_rundir::JudgeCheck;

use super::prompts::BenchmarkPrompt;

/// The evasive answer.
pub const EVASIVE: &str =
    "That is a good question. There are many factors to consider, and it depends on the situation. You may want to look into it further.";

/// Fewest words of a reference truncated to make a worse answer.
pub const MIN_TRUNCATED_WORDS: usize = 60;

/// How a pair's worse answer was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorseKind {
    /// Another question's reference answer.
    OffTopic,
    /// [`EVASIVE`].
    Evasive,
    /// The first fifth of the reference.
    Truncated,
}

impl WorseKind {
    /// Its name in the check file.
    pub fn name(self) -> &'static str {
        match self {
            WorseKind::OffTopic => "off-topic",
            WorseKind::Evasive => "evasive",
            WorseKind::Truncated => "truncated",
        }
    }
}

/// One checked pair.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckPair {
    /// The question's id, with the kind (`81/off-topic`).
    pub id: String,
    /// The question.
    pub question: String,
    /// The reference answer.
    pub better: String,
    /// The answer made worse.
    pub worse: String,
    /// How.
    pub kind: WorseKind,
}

/// Up to `count` pairs from the prompts that have a reference answer, kinds in turn.
pub fn check_pairs(prompts: &[BenchmarkPrompt], count: usize) -> Vec<CheckPair> {
    let usable: Vec<&BenchmarkPrompt> = prompts
        .iter()
        .filter(|p| !p.reference.trim().is_empty())
        .collect();
    let kinds = [
        WorseKind::OffTopic,
        WorseKind::Evasive,
        WorseKind::Truncated,
    ];
    usable
        .iter()
        .enumerate()
        .take(count)
        .map(|(i, prompt)| {
            let mut kind = kinds[i % kinds.len()];
            let words: Vec<&str> = prompt.reference.split_whitespace().collect();
            if kind == WorseKind::Truncated && words.len() < MIN_TRUNCATED_WORDS {
                kind = WorseKind::Evasive;
            }
            if kind == WorseKind::OffTopic && usable.len() < 2 {
                kind = WorseKind::Evasive;
            }
            let worse = match kind {
                WorseKind::OffTopic => usable[(i + usable.len() / 2) % usable.len()]
                    .reference
                    .clone(),
                WorseKind::Evasive => EVASIVE.to_owned(),
                WorseKind::Truncated => words[..words.len() / 5].join(" "),
            };
            CheckPair {
                id: format!("{}/{}", prompt.id, kind.name()),
                question: prompt.prompt.clone(),
                better: prompt.reference.clone(),
                worse,
                kind,
            }
        })
        .collect()
}

/// 1 when `better > worse`, 0.5 on a tie, 0 otherwise.
fn prefers(better: f64, worse: f64) -> f64 {
    if better > worse {
        1.0
    } else if better == worse {
        0.5
    } else {
        0.0
    }
}

fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Agreement by kind and overall, from each pair's agreement.
fn by_kind(pairs: &[CheckPair], agreement: &[Option<f64>]) -> BTreeMap<String, f64> {
    let mut groups: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (pair, a) in pairs.iter().zip(agreement) {
        if let Some(a) = a {
            groups.entry(pair.kind.name()).or_default().push(*a);
        }
    }
    groups
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), mean(v)?)))
        .collect()
}

/// The check's numbers in single mode, from each pair's two ratings (`None`: unscored).
pub fn single_mode(pairs: &[CheckPair], ratings: &[(Option<f64>, Option<f64>)]) -> JudgeCheck {
    let agreement: Vec<Option<f64>> = ratings
        .iter()
        .map(|(better, worse)| Some(prefers((*better)?, (*worse)?)))
        .collect();
    JudgeCheck {
        pairs: Some(agreement.iter().flatten().count() as u64),
        agreement: mean(agreement.iter().flatten().copied()),
        agreement_by_kind: Some(by_kind(pairs, &agreement)),
        ..JudgeCheck::default()
    }
}

/// The check's numbers in pair mode, from each pair's results with the better answer as "the
/// model" (`[shown first, shown second]`, 1 win, 0.5 tie, 0 loss; `None`: unscored) and
/// whether its two verdicts were position-consistent.
pub fn pair_mode(pairs: &[CheckPair], results: &[Option<([f64; 2], bool)>]) -> JudgeCheck {
    let order = |k: usize| -> Vec<f64> {
        results
            .iter()
            .flatten()
            .map(|(r, _)| prefers(r[k], 0.5))
            .collect()
    };
    let (first, second) = (order(0), order(1));
    let agreement: Vec<Option<f64>> = results
        .iter()
        .map(|r| r.map(|(r, _)| 0.5 * (prefers(r[0], 0.5) + prefers(r[1], 0.5))))
        .collect();
    JudgeCheck {
        pairs: Some(first.len() as u64),
        agreement: mean(first.iter().chain(&second).copied()),
        agreement_better_first: mean(first),
        agreement_better_second: mean(second),
        position_consistency: consistency(results),
        agreement_by_kind: Some(by_kind(pairs, &agreement)),
        ..JudgeCheck::default()
    }
}

/// The share of scored pairs whose verdict held in both orders.
fn consistency(results: &[Option<([f64; 2], bool)>]) -> Option<f64> {
    mean(
        results
            .iter()
            .flatten()
            .map(|(_, consistent)| f64::from(u8::from(*consistent))),
    )
}

/// The check's numbers in multi mode, from each pair's scores (`[better, worse]`, the means
/// over both orders; `None`: unscored) and whether the better-scored answer stayed the same
/// in both orders.
pub fn multi_mode(pairs: &[CheckPair], results: &[Option<([f64; 2], bool)>]) -> JudgeCheck {
    let agreement: Vec<Option<f64>> = results
        .iter()
        .map(|r| r.map(|([better, worse], _)| prefers(better, worse)))
        .collect();
    JudgeCheck {
        pairs: Some(agreement.iter().flatten().count() as u64),
        agreement: mean(agreement.iter().flatten().copied()),
        position_consistency: consistency(results),
        agreement_by_kind: Some(by_kind(pairs, &agreement)),
        ..JudgeCheck::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(id: &str, reference_words: usize) -> BenchmarkPrompt {
        BenchmarkPrompt {
            id: id.to_owned(),
            category: String::new(),
            prompt: format!("question {id}"),
            reference: (0..reference_words)
                .map(|w| format!("w{w}"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    #[test]
    fn pairs_take_kinds_in_turn_from_prompts_with_references() {
        let prompts = [
            prompt("1", 100),
            prompt("2", 0),
            prompt("3", 10),
            prompt("4", 100),
            prompt("5", 100),
        ];
        let pairs = check_pairs(&prompts, 10);
        // Four usable prompts (2 has no reference): off-topic, evasive, truncated, off-topic.
        let ids: Vec<&str> = pairs.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            ["1/off-topic", "3/evasive", "4/truncated", "5/off-topic"]
        );
        // Off-topic: the reference half the set away (index 0 + 2 = prompt 4's).
        assert_eq!(pairs[0].worse, prompts[3].reference);
        assert_eq!(pairs[1].worse, EVASIVE);
        assert_eq!(pairs[2].worse.split_whitespace().count(), 20);
        assert!(pairs[2].better.starts_with(&pairs[2].worse));
        assert_eq!(check_pairs(&prompts, 2).len(), 2);
    }

    #[test]
    fn a_short_reference_is_not_truncated() {
        let prompts = [prompt("1", 100), prompt("2", 100), prompt("3", 30)];
        assert_eq!(check_pairs(&prompts, 3)[2].kind, WorseKind::Evasive);
    }

    #[test]
    fn single_mode_counts_higher_ratings_and_half_ties() {
        let prompts = [prompt("1", 100), prompt("2", 100), prompt("3", 100)];
        let pairs = check_pairs(&prompts, 3);
        let check = single_mode(
            &pairs,
            &[
                (Some(8.0), Some(3.0)),
                (Some(5.0), Some(5.0)),
                (None, Some(2.0)),
            ],
        );
        assert_eq!(check.pairs, Some(2));
        assert_eq!(check.agreement, Some(0.75));
        let kinds = check.agreement_by_kind.unwrap();
        assert_eq!(kinds["off-topic"], 1.0);
        assert_eq!(kinds["evasive"], 0.5);
        assert!(!kinds.contains_key("truncated"));
    }

    #[test]
    fn pair_mode_splits_agreement_by_order() {
        let prompts = [prompt("1", 100), prompt("2", 100)];
        let pairs = check_pairs(&prompts, 2);
        // Pair 1: better wins shown first, loses shown second (position bias, inconsistent).
        // Pair 2: better wins both times (0.9, 0.7 expected), consistent.
        let results = [Some(([1.0, 0.0], false)), Some(([0.9, 0.7], true))];
        let check = pair_mode(&pairs, &results);
        assert_eq!(check.pairs, Some(2));
        assert_eq!(check.agreement_better_first, Some(1.0));
        assert_eq!(check.agreement_better_second, Some(0.5));
        assert_eq!(check.agreement, Some(0.75));
        assert_eq!(check.position_consistency, Some(0.5));
        assert_eq!(check.agreement_by_kind.unwrap()["off-topic"], 0.5);
    }

    #[test]
    fn multi_mode_compares_the_two_scores_and_counts_flips() {
        let prompts = [prompt("1", 100), prompt("2", 100), prompt("3", 100)];
        let pairs = check_pairs(&prompts, 3);
        let results = [Some(([8.0, 3.0], true)), Some(([5.0, 5.5], false)), None];
        let check = multi_mode(&pairs, &results);
        assert_eq!(check.pairs, Some(2));
        assert_eq!(check.agreement, Some(0.5));
        assert_eq!(check.position_consistency, Some(0.5));
        let kinds = check.agreement_by_kind.unwrap();
        assert_eq!((kinds["off-topic"], kinds["evasive"]), (1.0, 0.0));
    }
}

//! Reading a judge's verdict from its free-text reply, as each protocol's reference parser
//! reads it.
//!
//! - MT-Bench `single-v1` (FastChat `llm_judge/common.py`, `run_judge_single`): the first
//!   match of `\[\[(\d+\.?\d*)\]\]`, else the first of the backup `\[(\d+\.?\d*)\]`. A judge
//!   that quotes the format first ("e.g. Rating: \[\[5\]\]") is read at the quote, as FastChat
//!   reads it. fedpref also leaves a rating outside 1–10 unparsed, where FastChat would keep it.
//! - MT-Bench `pair-v2` (`run_judge_pair`): `[[A]]` anywhere wins over `[[B]]`, which wins
//!   over `[[C]]` (a tie), whatever their order in the reply.
//! - JudgeLM's multi-answer judgements as the paper read them ([`parse_leading_scores`]): the
//!   reply starts with a number, and its first numbers are the scores.

/// The rating in `reply` within `[low, high]`, if FastChat's patterns find one.
///
/// ```
/// use fedpref_scorer_standard::verdict::parse_rating;
/// assert_eq!(parse_rating("Short but right. Rating: [[7]]", 1.0, 10.0), Some(7.0));
/// assert_eq!(parse_rating("Rating: [[11]]", 1.0, 10.0), None);
/// ```
pub fn parse_rating(reply: &str, low: f64, high: f64) -> Option<f64> {
    let value = first_number(reply, "[[", "]]").or_else(|| first_number(reply, "[", "]"))?;
    (value >= low && value <= high).then_some(value)
}

/// A pairwise verdict, in the order the two answers were shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairVerdict {
    /// Assistant A is better.
    A,
    /// Assistant B is better.
    B,
    /// A tie (`[[C]]`).
    Tie,
}

/// FastChat's pair verdict: `[[A]]` if the reply contains it, else `[[B]]`, else `[[C]]`.
///
/// ```
/// use fedpref_scorer_standard::verdict::{parse_pair, PairVerdict};
/// assert_eq!(parse_pair("B is more detailed.\n\n[[B]]"), Some(PairVerdict::B));
/// assert_eq!(parse_pair("no verdict"), None);
/// ```
pub fn parse_pair(reply: &str) -> Option<PairVerdict> {
    [
        ("[[A]]", PairVerdict::A),
        ("[[B]]", PairVerdict::B),
        ("[[C]]", PairVerdict::Tie),
    ]
    .into_iter()
    .find(|(mark, _)| reply.contains(mark))
    .map(|(_, verdict)| verdict)
}

/// The paper's reading of a multi-answer JudgeLM judgement (`pref_evaluation.py` of the
/// authors' OpenFedLLM fork): the reply must start with a number, and the first `count` numbers
/// (`\d+[.]?\d*`) anywhere in it are the answers' scores, in order; fewer leaves it unparsed.
/// (JudgeLM's own `parse_score` reads two scores only.)
///
/// ```
/// use fedpref_scorer_standard::verdict::parse_leading_scores;
/// assert_eq!(parse_leading_scores("8.5 9 7\nAll three ...", 3), Some(vec![8.5, 9.0, 7.0]));
/// assert_eq!(parse_leading_scores("8 9\nAssistant 3 was off-topic", 3), Some(vec![8.0, 9.0, 3.0]));
/// assert_eq!(parse_leading_scores("Scores: 8 9 7", 3), None);
/// ```
pub fn parse_leading_scores(reply: &str, count: usize) -> Option<Vec<f64>> {
    if !reply.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let scores: Vec<f64> = numbers(reply).take(count).collect();
    (scores.len() == count).then_some(scores)
}

/// Every `\d+[.]?\d*` in `text`, left to right, without overlaps.
fn numbers(text: &str) -> impl Iterator<Item = f64> + '_ {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && !bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == bytes.len() {
            return None;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        text[start..i].parse().ok()
    })
}

/// The leftmost `open` + `\d+\.?\d*` + `close` in `text`, as a number.
fn first_number(text: &str, open: &str, close: &str) -> Option<f64> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    (0..text.len())
        .filter(|&i| text.is_char_boundary(i) && text[i..].starts_with(open))
        .find_map(|i| {
            let rest = &text[i + open.len()..];
            let mut end = digits(rest);
            if end == 0 {
                return None;
            }
            if rest[end..].starts_with('.') {
                end += 1 + digits(&rest[end + 1..]);
            }
            rest[end..]
                .starts_with(close)
                .then(|| rest[..end].parse().ok())
                .flatten()
        })
}

//! Reading a judge's verdict from its free-text reply: a `[[rating]]` on MT-Bench's 1–10 scale
//! (FastChat `single-v1`) or `[[A]]` / `[[B]]` / `[[C]]` (FastChat `pair-v2`).
//!
//! FastChat takes the first `[[n]]` (`re.search(r"\[\[(\d+\.?\d*)\]\]")`) and falls back to
//! `[n]`. Judges often quote the format first ("strictly following the format \[\[rating\]\],
//! e.g. Rating: \[\[5\]\]") and give their own rating last, so here the **last** well-formed
//! rating wins; `[[8.5]]`, `[[ 7 ]]` and `[[7/10]]` are read, `[[rating]]` is skipped. A rating
//! outside `[low, high]` or no rating at all leaves the reply unparsed.

/// The rating in `reply` within `[low, high]`, if one can be read.
///
/// ```
/// use fedpref_scorer_standard::verdict::parse_rating;
/// assert_eq!(parse_rating("Short but right. Rating: [[7]]", 1.0, 10.0), Some(7.0));
/// assert_eq!(parse_rating("Rating: [[11]]", 1.0, 10.0), None);
/// ```
pub fn parse_rating(reply: &str, low: f64, high: f64) -> Option<f64> {
    let double = bracketed(reply, "[[", "]]").filter_map(number).last();
    let value = match double {
        Some(v) => v,
        // FastChat's backup pattern: a single-bracketed number, e.g. "Rating: [6]".
        None => bracketed(reply, "[", "]").filter_map(number).last()?,
    };
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

/// The last `[[A]]`, `[[B]]` or `[[C]]` in `reply`.
///
/// ```
/// use fedpref_scorer_standard::verdict::{parse_pair, PairVerdict};
/// assert_eq!(parse_pair("B is more detailed.\n\n[[B]]"), Some(PairVerdict::B));
/// assert_eq!(parse_pair("no verdict"), None);
/// ```
pub fn parse_pair(reply: &str) -> Option<PairVerdict> {
    bracketed(reply, "[[", "]]")
        .filter_map(|inner| match inner.trim() {
            "A" => Some(PairVerdict::A),
            "B" => Some(PairVerdict::B),
            "C" => Some(PairVerdict::Tie),
            _ => None,
        })
        .last()
}

/// The texts between each `open` and the next `close` (not crossing a line or another `open`).
fn bracketed<'a>(
    text: &'a str,
    open: &'a str,
    close: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let start = rest.find(open)? + open.len();
        rest = &rest[start..];
        let end = rest.find(close)?;
        let inner = &rest[..end];
        if inner.contains(['\n', '[', ']']) {
            continue;
        }
        rest = &rest[end + close.len()..];
        return Some(inner);
    })
}

/// A plain decimal number, optionally written as `n/10`, with surrounding spaces.
fn number(inner: &str) -> Option<f64> {
    let inner = inner.trim();
    let inner = inner
        .strip_suffix("/10")
        .map(str::trim_end)
        .unwrap_or(inner);
    let valid = !inner.is_empty()
        && inner.chars().all(|c| c.is_ascii_digit() || c == '.')
        && inner.starts_with(|c: char| c.is_ascii_digit())
        && inner.matches('.').count() <= 1;
    if valid {
        inner.parse().ok()
    } else {
        None
    }
}

//! Multi-answer judging as the paper judged (JudgeLM, Zhu et al. 2023, `conv_judge_multi`):
//! one prompt holds the question and the answers of every method compared, anonymized as
//! Assistant 1..N, and the judge writes one 1–10 score per answer on its first line.
//!
//! JudgeLM's template compares two answers; the paper's scripts compared three methods in one
//! prompt, so the wording here is JudgeLM's with the count and the list of assistants written
//! out for N answers. A judge favours some positions, so each item is judged N times with the
//! answers rotated ([`rotation`]): every answer sits in every position once, and its score is
//! the mean over the rotations ([`combine`]).

/// JudgeLM's system message.
pub const SYSTEM: &str =
    "You are a helpful and precise assistant for checking the quality of the answer.";

/// The judge's sampling temperature in the paper's setup (its JudgeLM runs).
pub const PAPER_TEMPERATURE: f64 = 0.2;

/// The user message judging `answers` (already in the order shown) to `question`.
///
/// ```
/// use fedpref_scorer_standard::multi::render;
/// let prompt = render("Why is the sky blue?", &["Rayleigh.", "Because.", "Dust."]);
/// assert!(prompt.starts_with("[Question]\nWhy is the sky blue?\n\n[The Start of Assistant 1's Answer]\nRayleigh."));
/// assert!(prompt.contains("three values indicating the scores for Assistant 1, 2 and 3"));
/// ```
pub fn render(question: &str, answers: &[&str]) -> String {
    let n = answers.len();
    let count = count_word(n);
    let mut out = format!("[Question]\n{question}\n\n");
    for (k, answer) in answers.iter().enumerate() {
        let k = k + 1;
        out.push_str(&format!(
            "[The Start of Assistant {k}'s Answer]\n{answer}\n\n[The End of Assistant {k}'s Answer]\n\n"
        ));
    }
    out.push_str(&format!(
        "[System]\nWe would like to request your feedback on the performance of {count} AI assistants in response to the user question displayed above.\n\
         Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better overall performance.\n\
         Please first output a single line containing only {count} values indicating the scores for Assistant {}, respectively. The {count} scores are separated by a space. In the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that the order in which the responses were presented does not affect your judgment.\n\n",
        assistants(n)
    ));
    out
}

/// Which answer position `p` shows in rotation `r` of `n` answers: answer `(p + r) % n`.
///
/// ```
/// use fedpref_scorer_standard::multi::rotation;
/// assert_eq!(rotation(3, 1), [1, 2, 0]);
/// ```
pub fn rotation(n: usize, r: usize) -> Vec<usize> {
    (0..n).map(|p| (p + r) % n).collect()
}

/// The verdict of one item over its rotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    /// Each answer's score, the mean over the rotations.
    pub scores: Vec<f64>,
    /// The best answer was the same in every rotation (ties go to the lowest answer index).
    pub consistent: bool,
}

/// Combines the scores of each rotation (`by_position[r][p]`: the score written for position
/// `p` in rotation `r`, see [`rotation`]) into one score per answer; `None` when a rotation
/// holds the wrong number of scores.
pub fn combine(by_position: &[Vec<f64>]) -> Option<Combined> {
    let n = by_position.len();
    if n == 0 || by_position.iter().any(|scores| scores.len() != n) {
        return None;
    }
    let mut sums = vec![0.0; n];
    let mut best = Vec::with_capacity(n);
    for (r, scores) in by_position.iter().enumerate() {
        let mut by_answer = vec![0.0; n];
        for (p, answer) in rotation(n, r).into_iter().enumerate() {
            by_answer[answer] = scores[p];
        }
        for (sum, score) in sums.iter_mut().zip(&by_answer) {
            *sum += score;
        }
        best.push(argmax(&by_answer));
    }
    Some(Combined {
        scores: sums.iter().map(|s| s / n as f64).collect(),
        consistent: best.windows(2).all(|w| w[0] == w[1]),
    })
}

/// The index of the largest value, the lowest index among equals.
fn argmax(values: &[f64]) -> usize {
    (0..values.len())
        .reduce(|best, i| if values[i] > values[best] { i } else { best })
        .unwrap_or(0)
}

/// "two", "three", ... as JudgeLM writes its count; digits past ten.
fn count_word(n: usize) -> String {
    const WORDS: [&str; 9] = [
        "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    n.checked_sub(2)
        .and_then(|i| WORDS.get(i))
        .map_or_else(|| n.to_string(), |w| (*w).to_owned())
}

/// "1 and 2", "1, 2 and 3", ...
fn assistants(n: usize) -> String {
    match n {
        0 | 1 => "1".to_owned(),
        _ => {
            let head: Vec<String> = (1..n).map(|k| k.to_string()).collect();
            format!("{} and {n}", head.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_answers_read_as_judgelms_own_wording() {
        let prompt = render("Q", &["a", "b"]);
        assert!(prompt.contains("performance of two AI assistants"));
        assert!(prompt.contains(
            "only two values indicating the scores for Assistant 1 and 2, respectively. The two scores are separated by a space."
        ));
        assert!(prompt.ends_with("does not affect your judgment.\n\n"));
        assert_eq!(assistants(4), "1, 2, 3 and 4");
        assert_eq!(count_word(12), "12");
    }

    #[test]
    fn every_answer_sits_in_every_position_once() {
        for n in 2..6 {
            for answer in 0..n {
                let mut positions: Vec<usize> = (0..n)
                    .map(|r| rotation(n, r).iter().position(|&a| a == answer).unwrap())
                    .collect();
                positions.sort_unstable();
                assert_eq!(positions, (0..n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn scores_map_back_to_answers_and_average_over_rotations() {
        // A judge that gives position 1 two extra points: answer quality 8, 6, 4.
        // Rotation r shows answers (r, r+1, r+2) mod 3.
        let quality = [8.0, 6.0, 4.0];
        let by_position: Vec<Vec<f64>> = (0..3)
            .map(|r| {
                rotation(3, r)
                    .iter()
                    .enumerate()
                    .map(|(p, &a)| quality[a] + if p == 0 { 2.0 } else { 0.0 })
                    .collect()
            })
            .collect();
        let combined = combine(&by_position).unwrap();
        // Each answer got the bonus once in three rotations: +2/3.
        for (score, q) in combined.scores.iter().zip(quality) {
            assert!((score - (q + 2.0 / 3.0)).abs() < 1e-12, "{score}");
        }
        // Answer 1 shown first (rotation 1) scores 8, level with answer 0: ties go to answer 0.
        assert!(combined.consistent);
        // A judge that always prefers position 1 by a lot flips the best answer.
        let biased: Vec<Vec<f64>> = (0..3).map(|_| vec![9.0, 5.0, 5.0]).collect();
        let flipped = combine(&biased).unwrap();
        assert!(!flipped.consistent);
        assert_eq!(flipped.scores, [19.0 / 3.0; 3]);
        assert_eq!(combine(&[vec![1.0, 2.0], vec![3.0]]), None);
        assert_eq!(combine(&[]), None);
    }
}

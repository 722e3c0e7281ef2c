//! Verdicts read through the judge's probabilities instead of its sampled text
//! (`read = "probabilities"`): the host returns `log P(option)` for the verdict's options right
//! after the verdict's opening (`Rating: [[` in single mode, `[[` in pair mode), and the score is
//! the expectation under those probabilities, renormalized over the options.
//!
//! One forward pass per verdict instead of a generated explanation: deterministic, never
//! unparsed, and a continuous score that separates answers a sampled integer would tie. What it
//! gives up is the judge's explanation before its verdict (MT-Bench's prompts ask for one
//! first), so its numbers are not FastChat's; `read = "text"` keeps that protocol.

/// The options of a 1–10 rating, in order: option `k` is the rating `k + 1`.
pub const RATINGS: [&str; 10] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];

/// What the single-mode judge's reply starts with before its rating (MT-Bench's format).
pub const RATING_PREFIX: &str = "Rating: [[";

/// The options of a pairwise verdict: A better, B better, a tie.
pub const PAIR_OPTIONS: [&str; 3] = ["A", "B", "C"];

/// What the pair-mode judge's verdict starts with.
pub const PAIR_PREFIX: &str = "[[";

/// Below this total probability of the options, the judge did not mean to answer with one of
/// them at that point: the verdict is unparsed rather than an expectation over noise.
pub const MIN_MASS: f64 = 1e-3;

/// The options' probabilities renormalized to sum to 1, and their total before that; `None`
/// when a value is not finite or the total is below [`MIN_MASS`].
///
/// An option that is a prefix of another (`1` of `10`) is read by the host as its tokens alone,
/// which also counts the start of the longer one; the longer options' probability is taken off
/// it, so `P(1)` is "1 not followed by 0".
pub fn normalized(options: &[&str], logprobs: &[f64]) -> Option<(Vec<f64>, f64)> {
    if logprobs.len() != options.len()
        || logprobs.is_empty()
        || logprobs.iter().any(|l| l.is_nan() || *l > 1e-9)
    {
        return None;
    }
    let raw: Vec<f64> = logprobs.iter().map(|l| l.exp()).collect();
    let probabilities: Vec<f64> = options
        .iter()
        .zip(&raw)
        .map(|(option, p)| {
            let longer: f64 = options
                .iter()
                .zip(&raw)
                .filter(|(other, _)| other.len() > option.len() && other.starts_with(option))
                .map(|(_, q)| q)
                .sum();
            (p - longer).max(0.0)
        })
        .collect();
    let mass: f64 = probabilities.iter().sum();
    (mass >= MIN_MASS).then(|| (probabilities.iter().map(|p| p / mass).collect(), mass))
}

/// The expected rating `Σ k·p_k` over [`RATINGS`], and the ratings' total probability.
pub fn expected_rating(logprobs: &[f64]) -> Option<(f64, f64)> {
    let (p, mass) = normalized(&RATINGS, logprobs)?;
    let rating = p.iter().enumerate().map(|(k, p)| (k + 1) as f64 * p).sum();
    Some((rating, mass))
}

/// The model's expected result (1 win, 0.5 tie, 0 loss) in each order, from both orders'
/// `[A, B, C]` log-probs (first: the model's answer shown as A; second: shown as B).
pub fn pair_orders(first: &[f64], second: &[f64]) -> Option<[f64; 2]> {
    let (a, _) = normalized(&PAIR_OPTIONS, first)?;
    let (b, _) = normalized(&PAIR_OPTIONS, second)?;
    Some([a[0] + 0.5 * a[2], b[1] + 0.5 * b[2]])
}

/// One pairwise item: the model's expected result averaged over the two orders, and whether
/// the most likely verdicts of the two orders agree once mapped to the model (position
/// consistency).
pub fn pair_result(first: &[f64], second: &[f64]) -> Option<(f64, bool)> {
    let (a, _) = normalized(&PAIR_OPTIONS, first)?;
    let (b, _) = normalized(&PAIR_OPTIONS, second)?;
    let [one, two] = pair_orders(first, second)?;
    // The model's win, tie and loss probabilities in each order.
    let as_model_first = [a[0], a[2], a[1]];
    let as_model_second = [b[1], b[2], b[0]];
    let most_likely = |p: &[f64; 3]| {
        (0..3)
            .max_by(|&i, &j| p[i].total_cmp(&p[j]).then(j.cmp(&i)))
            .unwrap_or(0)
    };
    Some((
        0.5 * (one + two),
        most_likely(&as_model_first) == most_likely(&as_model_second),
    ))
}

/// The options' probabilities as a line for the results file (`1:0.02 2:0.05 ...`).
pub fn describe(options: &[&str], logprobs: &[f64]) -> String {
    options
        .iter()
        .zip(logprobs)
        .map(|(o, l)| format!("{o}:{:.3}", l.exp()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_rating_renormalizes_over_the_ratings() {
        // P(7) = 0.3, P(8) = 0.1, the rest elsewhere: 7·0.75 + 8·0.25 = 7.25, mass 0.4.
        let mut logprobs = vec![f64::NEG_INFINITY; 10];
        logprobs[6] = 0.3f64.ln();
        logprobs[7] = 0.1f64.ln();
        let (rating, mass) = expected_rating(&logprobs).unwrap();
        assert!((rating - 7.25).abs() < 1e-12 && (mass - 0.4).abs() < 1e-12);
        let nowhere = vec![-20.0; 10];
        assert_eq!(expected_rating(&nowhere), None);
        assert_eq!(expected_rating(&[f64::NAN; 10]), None);
    }

    #[test]
    fn the_start_of_ten_is_not_counted_as_a_one() {
        // The host reads "1" as its token alone: 0.3, of which "1" "0" (a 10) is 0.2.
        let mut logprobs = vec![f64::NEG_INFINITY; 10];
        logprobs[0] = 0.3f64.ln();
        logprobs[9] = 0.2f64.ln();
        logprobs[4] = 0.1f64.ln();
        // P(1) = 0.1, P(5) = 0.1, P(10) = 0.2: (1 + 5 + 20) / 4 = 6.5, mass 0.4.
        let (rating, mass) = expected_rating(&logprobs).unwrap();
        assert!(
            (rating - 6.5).abs() < 1e-12 && (mass - 0.4).abs() < 1e-12,
            "{rating} {mass}"
        );
    }

    #[test]
    fn a_pair_averages_both_orders_from_the_models_side() {
        // First order (model = A): A 0.6, B 0.2, C 0.2 -> 0.6 + 0.1 = 0.7.
        // Second order (model = B): A 0.5, B 0.3, C 0.2 -> 0.3 + 0.1 = 0.4. Mean 0.55.
        let first = [0.6f64.ln(), 0.2f64.ln(), 0.2f64.ln()];
        let second = [0.5f64.ln(), 0.3f64.ln(), 0.2f64.ln()];
        let (score, consistent) = pair_result(&first, &second).unwrap();
        assert!((score - 0.55).abs() < 1e-12, "{score}");
        // Most likely: the model wins shown first, loses shown second.
        assert!(!consistent);
        let (_, consistent) =
            pair_result(&first, &[0.2f64.ln(), 0.7f64.ln(), 0.1f64.ln()]).unwrap();
        assert!(consistent);
        assert_eq!(pair_result(&first, &[0.0, 0.0]), None);
    }
}

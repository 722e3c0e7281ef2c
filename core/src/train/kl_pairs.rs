//! KTO's KL batch, formed from the answers of each optimizer step as TRL forms it: every answer's
//! prompt is paired with another answer of the same step, so the KL estimate `z0` measures the
//! current policy on mismatched (prompt, answer) pairs drawn from the very batch it corrects.
//!
//! TRL 0.8.0 (the version the paper ran) maps its data set in chunks of one optimizer step
//! (per-device batch × gradient accumulation × devices) and reverses each chunk's completions
//! (`get_KL_dataset`: `batch["completion"][::-1]`); TRL 0.10 rotates them by one instead. Both
//! can pair an answer with itself (the middle of an odd chunk, under reversal) or with the other
//! answer to the same prompt (both answers of a pair sit on one KTO client), which makes the
//! "mismatched" pair a matched one. fedpref never does either:
//!
//! 1. the step's answers are grouped by prompt (stably: groups in order of first appearance,
//!    answers in step order within a group), and `m` is the largest group;
//! 2. in that order, each answer's prompt takes the answer `m` places earlier, cyclically (with
//!    distinct prompts, `m = 1`: TRL 0.10's rotation by one);
//! 3. a pair that would still share its prompt (possible only when one prompt holds more than
//!    half of the step) is left out of the KL batch.
//!
//! The result is a permutation of the step's answers with no answer on its own prompt whenever
//! one exists. The KL sequences change from step to step, so their reference log-probs come
//! from the content-addressed cache on first use, each computed alone (exact wherever computed).

use fedpref_model::logprobs::MaskedSequence;

/// For each of a step's answers (given by their prompts), the position of the answer whose
/// tokens follow its prompt in the KL batch, or `None` when the pair is left out.
pub fn kl_partners(prompts: &[&[u32]]) -> Vec<Option<usize>> {
    let n = prompts.len();
    let order = grouped_order(prompts);
    let largest = largest_group(prompts);
    let mut partners = vec![None; n];
    if largest >= n {
        return partners;
    }
    for (k, &i) in order.iter().enumerate() {
        let j = order[(k + n - largest) % n];
        if prompts[j] != prompts[i] {
            partners[i] = Some(j);
        }
    }
    partners
}

/// The KL sequences of a step's `answers`: each one's prompt followed by its partner's answer
/// ([`kl_partners`]), `None` where the pair is left out.
pub fn kl_sequences(answers: &[&MaskedSequence]) -> Vec<Option<MaskedSequence>> {
    let prompts: Vec<&[u32]> = answers.iter().map(|s| prompt_ids(s)).collect();
    kl_partners(&prompts)
        .into_iter()
        .enumerate()
        .map(|(i, partner)| partner.map(|j| kl_sequence(answers[i], answers[j])))
        .collect()
}

/// `prompt_of`'s prompt followed by `answer_of`'s answer, the answer masked in.
pub fn kl_sequence(prompt_of: &MaskedSequence, answer_of: &MaskedSequence) -> MaskedSequence {
    let prompt = prompt_ids(prompt_of);
    let answer = &answer_of.ids[prompt_ids(answer_of).len()..];
    let mut ids = Vec::with_capacity(prompt.len() + answer.len());
    ids.extend_from_slice(prompt);
    ids.extend_from_slice(answer);
    let answer_mask = (0..ids.len()).map(|i| i >= prompt.len()).collect();
    MaskedSequence { ids, answer_mask }
}

/// The ids before the first answer token (a sequence is its prompt, then its answer).
fn prompt_ids(sequence: &MaskedSequence) -> &[u32] {
    let start = sequence
        .answer_mask
        .iter()
        .position(|&m| m)
        .unwrap_or(sequence.ids.len());
    &sequence.ids[..start]
}

/// Positions grouped by prompt: groups in order of first appearance, step order within each.
fn grouped_order(prompts: &[&[u32]]) -> Vec<usize> {
    let first: Vec<usize> = (0..prompts.len())
        .map(|i| (0..=i).find(|&k| prompts[k] == prompts[i]).unwrap_or(i))
        .collect();
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| (first[i], i));
    order
}

/// The most answers one prompt has in the step.
fn largest_group(prompts: &[&[u32]]) -> usize {
    prompts
        .iter()
        .map(|p| prompts.iter().filter(|q| q == &p).count())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn partners(prompts: &[u32]) -> Vec<Option<usize>> {
        let ids: Vec<[u32; 1]> = prompts.iter().map(|&p| [p]).collect();
        let refs: Vec<&[u32]> = ids.iter().map(|p| p.as_slice()).collect();
        kl_partners(&refs)
    }

    #[test]
    fn distinct_prompts_take_the_previous_answer() {
        // TRL 0.10's rotation by one: row i gets row i − 1's answer, row 0 the last one.
        assert_eq!(
            partners(&[7, 8, 9, 10]),
            [Some(3), Some(0), Some(1), Some(2)]
        );
    }

    #[test]
    fn both_answers_of_a_prompt_never_pair_with_each_other() {
        // Two pairs, in step order a a b b: m = 2, each takes the answer two places earlier.
        assert_eq!(
            partners(&[1, 1, 2, 2]),
            [Some(2), Some(3), Some(0), Some(1)]
        );
        // a b a c: grouped order 0 2 1 3 (a a b c), m = 2: 0 ← 1 (b), 2 ← 3 (c), 1 ← 0, 3 ← 2.
        assert_eq!(
            partners(&[1, 2, 1, 3]),
            [Some(1), Some(0), Some(3), Some(2)]
        );
        // a b b a, which TRL 0.8.0's reversal pairs entirely with the same prompts (0 with 3,
        // 1 with 2): grouped order 0 3 1 2, m = 2: 0 ← 1, 3 ← 2, 1 ← 0, 2 ← 3.
        assert_eq!(
            partners(&[1, 2, 2, 1]),
            [Some(1), Some(0), Some(3), Some(2)]
        );
    }

    #[test]
    fn a_step_without_a_mismatched_answer_leaves_pairs_out() {
        assert_eq!(partners(&[5]), [None]);
        assert_eq!(partners(&[5, 5]), [None, None]);
        // a a b: grouped order 0 1 2, m = 2: 0 would take 1 (same prompt), 1 takes 2, 2 takes 0.
        assert_eq!(partners(&[5, 5, 6]), [None, Some(2), Some(0)]);
        assert_eq!(partners(&[]), Vec::<Option<usize>>::new());
    }

    #[test]
    fn partners_are_a_permutation_of_the_other_prompts_answers() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..500 {
            let n = rng.random_range(2..12);
            let prompts: Vec<u32> = (0..n).map(|_| rng.random_range(0..5)).collect();
            let got = partners(&prompts);
            let largest = (0..5)
                .map(|p| prompts.iter().filter(|&&q| q == p).count())
                .max()
                .unwrap_or(0);
            let mut used = vec![false; n];
            for (i, partner) in got.iter().enumerate() {
                if let Some(j) = *partner {
                    assert_ne!(prompts[i], prompts[j], "{prompts:?}: {got:?}");
                    assert!(!used[j], "{prompts:?}: answer {j} used twice");
                    used[j] = true;
                }
            }
            if 2 * largest <= n {
                assert!(got.iter().all(Option::is_some), "{prompts:?}: {got:?}");
            }
        }
    }

    fn sequence(prompt: &[u32], answer: &[u32]) -> MaskedSequence {
        let ids: Vec<u32> = prompt.iter().chain(answer).copied().collect();
        let answer_mask = (0..ids.len()).map(|i| i >= prompt.len()).collect();
        MaskedSequence { ids, answer_mask }
    }

    #[test]
    fn kl_sequences_join_each_prompt_to_its_partners_answer() {
        // Both answers of prompt [1, 2] and one of prompt [3]: m = 2, grouped order 0 1 2;
        // answer 0 would take answer 1 (same prompt) and is left out, 1 takes 2, 2 takes 0.
        let step = [
            sequence(&[1, 2], &[10, 11]),
            sequence(&[1, 2], &[20]),
            sequence(&[3], &[30, 31, 32]),
        ];
        let refs: Vec<&MaskedSequence> = step.iter().collect();
        let kl = kl_sequences(&refs);
        assert!(kl[0].is_none());
        assert_eq!(kl[1], Some(sequence(&[1, 2], &[30, 31, 32])));
        assert_eq!(kl[2], Some(sequence(&[3], &[10, 11])));
    }
}

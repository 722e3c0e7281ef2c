//! The judge with the host's local model (a scripted fake host): prompt choice, single and pair
//! verdicts, host failures, the cache, parameter errors and the prompt renderer.

use fedpref_plugin_api::{ErrorKind, Outcome, Params, ScorerFunction};

use super::{item, metric, prompts_dir, ScriptedHost, PROMPTS};
use crate::{prompts::JudgePrompt, Judge};

fn judge(json: &str) -> Judge {
    Judge::from_params(&Params::parse(json).unwrap()).unwrap()
}

#[test]
fn single_mode_uses_the_reference_prompt_when_a_reference_exists() {
    let (_dir, prompts) = prompts_dir();
    let scorer = judge(&format!(
        r#"{{"prompts_file": {prompts:?}, "max_tokens": 64, "read": "text"}}"#
    ));
    let host = ScriptedHost::new(vec![
        Ok("Good answer. Rating: [[8]]".into()),
        Ok("Wrong result. Rating: [[2]]".into()),
        Ok("I think it is fine.".into()),
        Err("out of memory".into()),
    ]);
    let mut math = item("111", "What is 2+2?", "5", "4");
    math.category = "math".into();
    let mut writing = item("81", "Write a poem.", "Roses are red.", "");
    writing.category = "writing".into();
    let items = [
        writing,
        math,
        item("82", "Q", "A", ""),
        item("83", "Q", "A", ""),
    ];
    let out = judge_score(&scorer, &items, &host);
    let outcomes: Vec<Outcome> = out.items.iter().map(|s| s.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Scored,
            Outcome::Scored,
            Outcome::Unparsed,
            Outcome::Failed
        ]
    );
    assert_eq!((out.items[0].score, out.items[1].score), (8.0, 2.0));
    assert!(out.items[2].score.is_nan() && out.items[2].detail.as_str() == "I think it is fine.");
    assert!(
        out.items[3].detail.contains("out of memory"),
        "{}",
        out.items[3].detail
    );
    assert_eq!(metric(&out, "mean_score"), 5.0);
    assert_eq!(
        (
            metric(&out, "scored"),
            metric(&out, "unparsed"),
            metric(&out, "failed")
        ),
        (2.0, 1.0, 1.0)
    );
    assert_eq!(metric(&out, "mean_score/math"), 2.0);
    assert_eq!(metric(&out, "mean_score/writing"), 8.0);

    let requests = host.requests();
    assert_eq!(requests.len(), 4);
    let user = |i: usize| requests[i].messages[1].content.to_string();
    assert_eq!(requests[0].messages[0].role.as_str(), "system");
    assert_eq!(
        requests[0].messages[0].content.as_str(),
        "You are a helpful assistant."
    );
    assert!(user(0).contains("[Question]\nWrite a poem.") && user(0).contains("Roses are red."));
    assert!(!user(0).contains("Reference Answer"));
    assert!(
        user(1).contains("[The Start of Reference Answer]\n4\n[The End of Reference Answer]"),
        "{}",
        user(1)
    );
    assert_eq!(requests[0].max_new_tokens, 64);
    assert_eq!(requests[0].temperature, 0.0);
}

fn judge_score(
    scorer: &Judge,
    items: &[fedpref_plugin_api::ScoreItem],
    host: &ScriptedHost,
) -> fedpref_plugin_api::ScoreOutput {
    let out = scorer.score(items, &host.services()).unwrap();
    out
}

#[test]
fn pair_mode_judges_both_orders_and_ties_inconsistent_verdicts() {
    let (_dir, prompts) = prompts_dir();
    let scorer = judge(&format!(
        r#"{{"prompts_file": {prompts:?}, "mode": "pair", "read": "text"}}"#
    ));
    // Per item: (answer first, answer second). The model is A in the first call, B in the second.
    let host = ScriptedHost::new(vec![
        Ok("[[A]]".into()),
        Ok("[[B]]".into()), // consistent win
        Ok("[[B]]".into()),
        Ok("[[A]]".into()), // consistent loss
        Ok("[[A]]".into()),
        Ok("[[A]]".into()), // position bias: inconsistent -> tie
        Ok("[[C]]".into()),
        Ok("[[C]]".into()), // tie
        Ok("[[A]]".into()),
        Ok("no idea".into()), // unparsed
    ]);
    let items: Vec<_> = (0..5)
        .map(|i| item(&i.to_string(), "Q", "model answer", "baseline answer"))
        .collect();
    let mut items = items;
    items.push(item("5", "Q", "model answer", ""));
    let out = judge_score(&scorer, &items, &host);
    let scores: Vec<f64> = out.items.iter().take(4).map(|s| s.score).collect();
    assert_eq!(scores, [1.0, 0.0, 0.5, 0.5]);
    // Each order's result from the model's side: the position bias shows in item 2.
    assert_eq!(out.items[0].scores.as_slice(), [1.0, 1.0]);
    assert_eq!(out.items[2].scores.as_slice(), [1.0, 0.0]);
    assert_eq!(out.items[4].outcome, Outcome::Unparsed);
    assert_eq!(out.items[5].outcome, Outcome::Failed);
    assert!(
        out.items[5].detail.contains("reference"),
        "{}",
        out.items[5].detail
    );
    assert_eq!(
        (
            metric(&out, "win_rate"),
            metric(&out, "loss_rate"),
            metric(&out, "tie_rate")
        ),
        (0.25, 0.25, 0.5)
    );
    assert_eq!(metric(&out, "inconsistent"), 1.0);
    assert_eq!(metric(&out, "judge_calls"), 10.0);
    let requests = host.requests();
    let user = |i: usize| requests[i].messages[1].content.to_string();
    assert!(user(0).find("model answer").unwrap() < user(0).find("baseline answer").unwrap());
    assert!(user(1).find("baseline answer").unwrap() < user(1).find("model answer").unwrap());
    assert!(requests[0].messages[0].content.contains("impartial judge"));
}

/// Log-probs of `options.len()` options: `p` on the listed ones, the rest of the mass elsewhere.
fn logprobs(n: usize, p: &[(usize, f64)]) -> Vec<f64> {
    let mut values = vec![f64::NEG_INFINITY; n];
    for &(i, pi) in p {
        values[i] = pi.ln();
    }
    values
}

#[test]
fn probabilities_give_the_expected_rating_after_the_rating_prefix() {
    let (_dir, prompts) = prompts_dir();
    let scorer = judge(&format!(r#"{{"prompts_file": {prompts:?}}}"#));
    // P(6) = 0.5, P(8) = 0.25 (mass 0.75): 6·2/3 + 8·1/3 = 20/3. Then mass far below the floor.
    let host = ScriptedHost::with_logprobs(vec![
        Ok(logprobs(10, &[(5, 0.5), (7, 0.25)])),
        Ok(vec![-30.0; 10]),
    ]);
    let items = [item("1", "Q1", "A1", ""), item("2", "Q2", "A2", "")];
    let out = judge_score(&scorer, &items, &host);
    assert!(
        (out.items[0].score - 20.0 / 3.0).abs() < 1e-12,
        "{}",
        out.items[0].score
    );
    assert!(
        out.items[0].detail.contains("6:0.500"),
        "{}",
        out.items[0].detail
    );
    assert_eq!(out.items[1].outcome, Outcome::Unparsed);
    let requests = host.options_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].reply_prefix.as_str(), "Rating: [[");
    let options: Vec<&str> = requests[0].options.iter().map(|o| o.as_str()).collect();
    assert_eq!(options, ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
    assert_eq!(requests[0].positions, 1);
    assert!(requests[0].messages[1].content.contains("[Question]\nQ1"));
    assert!(host.requests().is_empty(), "no text is generated");
}

#[test]
fn probabilities_in_pair_mode_average_both_orders_and_count_position_flips() {
    let (_dir, prompts) = prompts_dir();
    let scorer = judge(&format!(
        r#"{{"prompts_file": {prompts:?}, "mode": "pair"}}"#
    ));
    // Item 1: A 0.6 / C 0.4 shown first, B 0.8 / C 0.2 shown second:
    //   (0.6 + 0.2 + 0.8 + 0.1) / 2 = 0.85, the model most likely wins both times.
    // Item 2: A 1.0 both times (position bias): (1 + 0) / 2 = 0.5, inconsistent.
    let host = ScriptedHost::with_logprobs(vec![
        Ok(logprobs(3, &[(0, 0.6), (2, 0.4)])),
        Ok(logprobs(3, &[(1, 0.8), (2, 0.2)])),
        Ok(logprobs(3, &[(0, 1.0)])),
        Ok(logprobs(3, &[(0, 1.0)])),
    ]);
    let items = [
        item("1", "Q", "mine", "theirs"),
        item("2", "Q", "mine", "theirs"),
    ];
    let out = judge_score(&scorer, &items, &host);
    assert!(
        (out.items[0].score - 0.85).abs() < 1e-12,
        "{}",
        out.items[0].score
    );
    assert!(
        (out.items[1].score - 0.5).abs() < 1e-12,
        "{}",
        out.items[1].score
    );
    assert_eq!(metric(&out, "inconsistent"), 1.0);
    assert_eq!(metric(&out, "position_consistency"), 0.5);
    let requests = host.options_requests();
    assert_eq!(requests[0].reply_prefix.as_str(), "[[");
    let user = |i: usize| requests[i].messages[1].content.to_string();
    assert!(user(0).find("mine").unwrap() < user(0).find("theirs").unwrap());
    assert!(user(1).find("theirs").unwrap() < user(1).find("mine").unwrap());
}

#[test]
fn local_replies_are_cached_per_judge_model() {
    let (dir, prompts) = prompts_dir();
    let cache = dir.path().join("cache");
    let config = |model: &str| {
        format!(
            r#"{{"prompts_file": {prompts:?}, "cache_dir": {:?}, "model": {model:?}, "read": "text"}}"#,
            cache.to_str().unwrap()
        )
    };
    let items = [item("1", "Q1", "A1", ""), item("2", "Q2", "A2", "")];
    let first = ScriptedHost::new(vec![Ok("Rating: [[4]]".into()), Ok("Rating: [[6]]".into())]);
    let out = judge_score(&judge(&config("smol")), &items, &first);
    assert_eq!(
        (metric(&out, "judge_calls"), metric(&out, "cache_hits")),
        (2.0, 0.0)
    );
    // Same judge model: every verdict comes from the cache, the host is not asked.
    let second = ScriptedHost::new(vec![Ok("Rating: [[9]]".into())]);
    let again = judge_score(&judge(&config("smol")), &items, &second);
    assert_eq!(
        (metric(&again, "judge_calls"), metric(&again, "cache_hits")),
        (0.0, 2.0)
    );
    assert_eq!(
        again.items.iter().map(|s| s.score).collect::<Vec<_>>(),
        [4.0, 6.0]
    );
    assert!(second.requests().is_empty());
    // Another judge model does not reuse them; failures are never cached.
    let failing = ScriptedHost::new(vec![Err("boom".into())]);
    let other = judge_score(&judge(&config("bigger")), &items, &failing);
    assert_eq!(metric(&other, "failed"), 2.0);
    let retry = ScriptedHost::new(vec![Ok("Rating: [[5]]".into())]);
    let healed = judge_score(&judge(&config("bigger")), &items, &retry);
    assert_eq!(
        (
            metric(&healed, "judge_calls"),
            metric(&healed, "mean_score")
        ),
        (2.0, 5.0)
    );
}

#[test]
fn bad_judge_params_are_named() {
    let (dir, prompts) = prompts_dir();
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(
        &broken,
        format!("{}\nnot json\n", PROMPTS.lines().next().unwrap()),
    )
    .unwrap();
    let cases = [
        (
            format!(r#"{{"prompts_file": {prompts:?}, "mode": "triple"}}"#),
            "`mode`",
        ),
        (
            format!(r#"{{"prompts_file": {prompts:?}, "timeout_s": 5}}"#),
            "`timeout_s` applies to an HTTP judge only",
        ),
        (
            format!(r#"{{"prompts_file": {prompts:?}, "base_url": "http://127.0.0.1:1/v1"}}"#),
            "`model` is required",
        ),
        (
            format!(
                r#"{{"prompts_file": {prompts:?}, "base_url": "http://x/v1", "model": "m", "api_key_env": "FEDPREF_TEST_SURELY_UNSET_KEY"}}"#
            ),
            "FEDPREF_TEST_SURELY_UNSET_KEY",
        ),
        (
            format!(
                r#"{{"prompts_file": {prompts:?}, "base_url": "http://x/v1", "model": "m", "retries": 2.5}}"#
            ),
            "whole number",
        ),
        (
            format!(
                r#"{{"prompts_file": {prompts:?}, "base_url": "http://x/v1", "model": "m", "concurrency": 0}}"#
            ),
            "`concurrency`",
        ),
        (
            format!(r#"{{"prompts_file": {prompts:?}, "prompt": "single-v9"}}"#),
            "no prompt named \"single-v9\"",
        ),
        (
            format!(r#"{{"prompts_file": {:?}}}"#, broken.to_str().unwrap()),
            "line 2",
        ),
        (
            format!(
                r#"{{"prompts_file": {prompts:?}, "base_url": "http://x/v1", "model": "m", "read": "probabilities"}}"#
            ),
            "needs the host's local judge",
        ),
        (
            format!(r#"{{"prompts_file": {prompts:?}, "judge": "gpt"}}"#),
            "unknown parameter `judge`",
        ),
    ];
    for (json, expected) in cases {
        let err = Judge::from_params(&Params::parse(&json).unwrap()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParams, "{json}: {err}");
        assert!(err.message.contains(expected), "{json}: {err}");
    }
}

#[test]
fn templates_fill_slots_once_and_leave_other_braces() {
    let prompt = JudgePrompt {
        name: "t".into(),
        system_prompt: String::new(),
        prompt_template: "Q: {question}\nA: {answer}\nJSON: {\"k\": 1} {}".into(),
    };
    let text = prompt
        .render(&[("question", "say {answer}"), ("answer", "ok")])
        .unwrap();
    assert_eq!(text, "Q: say {answer}\nA: ok\nJSON: {\"k\": 1} {}");
    assert!(prompt
        .render(&[("question", "q")])
        .unwrap_err()
        .contains("`{answer}`"));
}

#[test]
fn real_prompts_file_has_what_the_judge_needs() {
    let Some(path) = fedpref_plugin_api::testing::asset(
        "bench/mtbench/judge_prompts.jsonl",
        "real_prompts_file_has_what_the_judge_needs",
    ) else {
        return;
    };
    let all = crate::prompts::load(&path).unwrap();
    for name in ["single-v1", "single-math-v1", "pair-v2"] {
        let from_asset = &all[name];
        let fixture: JudgePrompt = PROMPTS
            .lines()
            .map(|l| serde_json::from_str::<JudgePrompt>(l).unwrap())
            .find(|p| p.name == name)
            .unwrap();
        assert_eq!(from_asset, &fixture, "{name}");
    }
}

/// An item holding the answers of several methods, for multi mode.
fn multi_item(id: &str, answers: &[&str]) -> fedpref_plugin_api::ScoreItem {
    let mut item = item(id, "Name a prime.", "", "");
    item.answers = answers.iter().map(|a| (*a).into()).collect();
    item
}

#[test]
fn multi_mode_rotates_anonymized_answers_and_maps_scores_back() {
    let scorer = judge(r#"{"mode": "multi", "read": "text", "max_tokens": 32}"#);
    // Rotation r shows answers (r, r+1, r+2) mod 3; the judge rates the shown positions.
    // Answer 0 ("7") gets 9, 8, 7 over its positions 1, 3, 2; answer 1 gets 4, 6, 5; answer 2
    // gets 2, 3, 1. Item 2: one rotation's reply does not start with its scores.
    let host = ScriptedHost::new(vec![
        Ok("9 4 2\nAssistant 1 is right.".into()),
        Ok("6 3 8".into()),
        Ok("1 7 5".into()),
        Ok("8 5 3".into()),
        Ok("Scores: 8 5 3".into()),
        Ok("8 5 3".into()),
    ]);
    let items = [
        multi_item("1", &["7", "nine", "I cannot help."]),
        multi_item("2", &["7", "nine", "I cannot help."]),
        multi_item("3", &["7"]),
    ];
    let out = judge_score(&scorer, &items, &host);
    assert_eq!(out.items[0].outcome, Outcome::Scored);
    assert_eq!(out.items[0].scores.as_slice(), [8.0, 5.0, 2.0]);
    assert_eq!(out.items[0].score, 5.0);
    assert!(
        out.items[0]
            .detail
            .contains("[answers shown 2 3 1] scores 6.00 3.00 8.00"),
        "{}",
        out.items[0].detail
    );
    assert_eq!(out.items[1].outcome, Outcome::Unparsed);
    assert!(out.items[1].scores.is_empty());
    assert_eq!(out.items[2].outcome, Outcome::Failed);
    assert!(
        out.items[2].detail.contains("at least 2 methods"),
        "{}",
        out.items[2].detail
    );
    // Answer 0 is best in every rotation (9 > 4, 8 > 6, 7 > 5): consistent.
    assert_eq!(metric(&out, "position_consistency"), 1.0);
    assert_eq!(metric(&out, "mean_score/answer_1"), 8.0);
    assert_eq!(metric(&out, "mean_score/answer_3"), 2.0);
    assert_eq!(metric(&out, "unparsed"), 1.0);

    let requests = host.requests();
    assert_eq!(
        requests.len(),
        6,
        "one call per rotation, none for the failed item"
    );
    assert_eq!(
        requests[0].messages[0].content.as_str(),
        crate::multi::SYSTEM
    );
    assert!(
        (requests[0].temperature - 0.2).abs() < 1e-6,
        "the paper's judge temperature"
    );
    let user = |i: usize| requests[i].messages[1].content.to_string();
    for (call, first) in [(0, "7"), (1, "nine"), (2, "I cannot help.")] {
        assert!(
            user(call).contains(&format!("[The Start of Assistant 1's Answer]\n{first}\n")),
            "{}",
            user(call)
        );
    }
    // Anonymous: no method names, only Assistant numbers.
    assert!(!user(0).contains("dpo") && user(0).contains("Assistant 3"));
}

#[test]
fn multi_mode_reads_each_positions_expected_score_from_probabilities() {
    let scorer = judge(r#"{"mode": "multi"}"#);
    // Two answers, two rotations, each reply 2 positions x 10 ratings.
    let rated = |a: usize, b: usize| {
        let mut values = logprobs(10, &[(a - 1, 1.0)]);
        values.extend(logprobs(10, &[(b - 1, 0.5), (b, 0.5)]));
        Ok(values)
    };
    // Rotation 0 shows (0, 1): 8 and 4.5; rotation 1 shows (1, 0): 6 and 6.5.
    let host = ScriptedHost::with_logprobs(vec![rated(8, 4), rated(6, 6)]);
    let out = judge_score(&scorer, &[multi_item("1", &["good", "poor"])], &host);
    assert_eq!(out.items[0].scores.as_slice(), [7.25, 5.25]);
    assert_eq!(metric(&out, "position_consistency"), 1.0);
    let requests = host.options_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (
            requests[0].reply_prefix.as_str(),
            requests[0].positions,
            requests[0].separator.as_str()
        ),
        ("", 2, " ")
    );
    assert!(requests[1].messages[1]
        .content
        .contains("[The Start of Assistant 1's Answer]\npoor\n"));
}

#[test]
fn multi_mode_refuses_fastchat_prompt_keys() {
    for key in ["prompts_file", "prompt", "reference_prompt"] {
        let json = format!(r#"{{"mode": "multi", "{key}": "x"}}"#);
        let err = Judge::from_params(&Params::parse(&json).unwrap()).unwrap_err();
        assert!(
            err.message.contains(&format!("`{key}`")) && err.message.contains("multi"),
            "{err}"
        );
    }
}

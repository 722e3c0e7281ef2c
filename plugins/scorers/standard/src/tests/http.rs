//! The HTTP judge against a real local server ([`super::server`]): a well-formed request,
//! retries after 429 / 500 / a dropped connection, no retry after 404 or a malformed body,
//! timeouts, a stopped server, concurrency and the cache. Every failure must be an item
//! `Failed` with a clear message, in bounded time.

use std::time::{Duration, Instant};

use fedpref_plugin_api::{Outcome, Params, ScoreItem, ScoreOutput, ScorerFunction};

use super::{
    item, metric, prompts_dir,
    server::{closed_base_url, Reply, Server},
    ScriptedHost,
};
use crate::{chat::parse_completion, Judge};

/// A judge at `base_url` with fast retries; `extra` adds JSON fields.
fn http_judge(prompts: &str, base_url: &str, extra: &str) -> Judge {
    let json = format!(
        r#"{{"prompts_file": {prompts:?}, "base_url": {base_url:?}, "model": "test-judge", "timeout_s": 2, "retries": 2, "backoff_s": 0.01{extra}}}"#
    );
    Judge::from_params(&Params::parse(&json).unwrap()).unwrap()
}

fn score(judge: &Judge, items: &[ScoreItem]) -> ScoreOutput {
    let host = ScriptedHost::new(vec![Err("the local model must not be asked".into())]);
    let out = judge.score(items, &host.services()).unwrap();
    out
}

fn one() -> Vec<ScoreItem> {
    vec![item(
        "81",
        "Write a haiku about rain.",
        "Soft rain on the roof",
        "",
    )]
}

#[test]
fn a_completion_is_scored_and_the_request_is_openai_shaped() {
    let (_dir, prompts) = prompts_dir();
    let server = Server::start(vec![Reply::Completion(
        "Vivid imagery. Rating: [[8]]".into(),
    )]);
    std::env::set_var("FEDPREF_TEST_JUDGE_KEY_A", "sk-test-123");
    let judge = http_judge(
        &prompts,
        &server.base_url,
        r#", "api_key_env": "FEDPREF_TEST_JUDGE_KEY_A", "max_tokens": 99"#,
    );
    let out = score(&judge, &one());
    assert_eq!(
        (out.items[0].outcome, out.items[0].score),
        (Outcome::Scored, 8.0)
    );
    assert_eq!(out.items[0].detail.as_str(), "Vivid imagery. Rating: [[8]]");
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].header("authorization"),
        Some("Bearer sk-test-123")
    );
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    let body = received[0].json();
    assert_eq!(body["model"], "test-judge");
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["max_tokens"], 99);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["role"], "user");
    assert!(body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("Soft rain on the roof"));
}

#[test]
fn rate_limits_and_server_errors_are_retried() {
    let (_dir, prompts) = prompts_dir();
    let server = Server::start(vec![
        Reply::Status(
            429,
            r#"{"error": {"message": "rate limit reached"}}"#.into(),
            Some(0),
        ),
        Reply::Status(503, "overloaded".into(), None),
        Reply::Completion("Rating: [[6]]".into()),
    ]);
    let out = score(&http_judge(&prompts, &server.base_url, ""), &one());
    assert_eq!(
        (out.items[0].outcome, out.items[0].score),
        (Outcome::Scored, 6.0)
    );
    assert_eq!(server.received().len(), 3);
}

#[test]
fn persistent_server_errors_fail_the_item_after_the_retries() {
    let (_dir, prompts) = prompts_dir();
    let server = Server::start(vec![Reply::Status(
        500,
        r#"{"error": {"message": "model crashed"}}"#.into(),
        None,
    )]);
    let out = score(&http_judge(&prompts, &server.base_url, ""), &one());
    let item = &out.items[0];
    assert_eq!(item.outcome, Outcome::Failed);
    assert!(item.score.is_nan());
    for part in [
        "after 3 attempts",
        "http status 500",
        "model crashed",
        &server.base_url,
    ] {
        assert!(
            item.detail.contains(part),
            "{part:?} not in {:?}",
            item.detail
        );
    }
    assert_eq!(server.received().len(), 3);
    assert_eq!(metric(&out, "failed"), 1.0);
    assert!(metric(&out, "mean_score").is_nan());
}

#[test]
fn client_errors_and_malformed_replies_are_not_retried() {
    let (_dir, prompts) = prompts_dir();
    let server = Server::start(vec![Reply::Status(
        404,
        r#"{"error": {"message": "model `test-judge` not found"}}"#.into(),
        None,
    )]);
    let out = score(&http_judge(&prompts, &server.base_url, ""), &one());
    assert_eq!(out.items[0].outcome, Outcome::Failed);
    assert!(
        out.items[0].detail.contains("404") && out.items[0].detail.contains("not found"),
        "{}",
        out.items[0].detail
    );
    assert_eq!(server.received().len(), 1);

    let server = Server::start(vec![Reply::Raw("<html>proxy login</html>".into())]);
    let out = score(&http_judge(&prompts, &server.base_url, ""), &one());
    assert_eq!(out.items[0].outcome, Outcome::Failed);
    assert!(
        out.items[0].detail.contains("not JSON") && out.items[0].detail.contains("proxy login"),
        "{}",
        out.items[0].detail
    );
    assert_eq!(server.received().len(), 1);
    assert!(parse_completion(r#"{"choices": []}"#)
        .unwrap_err()
        .contains("choices[0].message.content"));
}

#[test]
fn a_slow_server_times_out_with_retries_not_a_hang() {
    let (_dir, prompts) = prompts_dir();
    let server = Server::start(vec![Reply::Slow(
        Duration::from_secs(5),
        "Rating: [[9]]".into(),
    )]);
    let judge = http_judge(
        &prompts,
        &server.base_url,
        r#", "timeout_s": 0.3, "retries": 1"#,
    );
    let started = Instant::now();
    let out = score(&judge, &one());
    let elapsed = started.elapsed();
    assert_eq!(out.items[0].outcome, Outcome::Failed);
    assert!(
        out.items[0]
            .detail
            .contains("after 2 attempts (timeout 0.3 s each)"),
        "{}",
        out.items[0].detail
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(server.received().len(), 2);
}

#[test]
fn a_slow_reply_within_the_timeout_is_fine() {
    let (_dir, prompts) = prompts_dir();
    let server = Server::start(vec![Reply::Slow(
        Duration::from_millis(200),
        "Rating: [[9]]".into(),
    )]);
    let out = score(&http_judge(&prompts, &server.base_url, ""), &one());
    assert_eq!(out.items[0].score, 9.0);
}

#[test]
fn a_stopped_server_gives_a_clear_error_quickly() {
    let (_dir, prompts) = prompts_dir();
    let base_url = closed_base_url();
    let judge = http_judge(&prompts, &base_url, "");
    let started = Instant::now();
    let out = score(&judge, &one());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let detail = out.items[0].detail.to_string();
    assert_eq!(out.items[0].outcome, Outcome::Failed);
    for part in ["after 3 attempts", "check that the server runs", &base_url] {
        assert!(detail.contains(part), "{part:?} not in {detail:?}");
    }
    assert!(detail.to_lowercase().contains("connect"), "{detail}");
}

#[test]
fn a_dropped_connection_is_retried() {
    let (_dir, prompts) = prompts_dir();
    let server = Server::start(vec![
        Reply::Close,
        Reply::Completion("Rating: [[3]]".into()),
    ]);
    let out = score(&http_judge(&prompts, &server.base_url, ""), &one());
    assert_eq!(
        (out.items[0].outcome, out.items[0].score),
        (Outcome::Scored, 3.0)
    );
    assert_eq!(server.received().len(), 2);
}

#[test]
fn calls_run_concurrently_and_replies_are_cached() {
    let (dir, prompts) = prompts_dir();
    let server = Server::start(vec![Reply::Slow(
        Duration::from_millis(300),
        "Rating: [[7]]".into(),
    )]);
    let cache = dir.path().join("verdicts");
    let extra = format!(
        r#", "concurrency": 4, "cache_dir": {:?}"#,
        cache.to_str().unwrap()
    );
    let items: Vec<ScoreItem> = (0..8)
        .map(|i| item(&i.to_string(), &format!("question {i}"), "answer", ""))
        .collect();
    let started = Instant::now();
    let out = score(&http_judge(&prompts, &server.base_url, &extra), &items);
    let elapsed = started.elapsed();
    assert!(out.items.iter().all(|s| s.score == 7.0));
    // 8 calls of 0.3 s on 4 threads: about 0.6 s, not 2.4 s.
    assert!(elapsed < Duration::from_millis(1800), "took {elapsed:?}");
    assert_eq!(
        (metric(&out, "judge_calls"), metric(&out, "cache_hits")),
        (8.0, 0.0)
    );
    // The second scoring is answered from the cache: no request reaches the server.
    let again = score(&http_judge(&prompts, &server.base_url, &extra), &items);
    assert_eq!(
        (metric(&again, "judge_calls"), metric(&again, "cache_hits")),
        (0.0, 8.0)
    );
    assert_eq!(
        again.items.iter().map(|s| s.score).collect::<Vec<_>>(),
        vec![7.0; 8]
    );
    assert_eq!(server.received().len(), 8);
    // Items are returned in input order whatever order the threads finished in.
    assert_eq!(
        again
            .items
            .iter()
            .map(|s| s.id.to_string())
            .collect::<Vec<_>>(),
        (0..8).map(|i| i.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn a_judge_that_keeps_failing_is_not_called_for_the_rest() {
    let (_dir, prompts) = prompts_dir();
    let server = Server::start(vec![Reply::Status(503, "overloaded".into(), None)]);
    let judge = http_judge(
        &prompts,
        &server.base_url,
        r#", "retries": 0, "concurrency": 1"#,
    );
    let items: Vec<ScoreItem> = (0..8).map(|i| item(&i.to_string(), "Q", "A", "")).collect();
    let out = score(&judge, &items);
    assert_eq!(metric(&out, "failed"), 8.0);
    assert_eq!(
        server.received().len(),
        crate::judge::MAX_FAILURES_IN_A_ROW,
        "the calls after the limit are not sent"
    );
    assert!(
        out.items[7].detail.contains("failed 5 calls in a row"),
        "{}",
        out.items[7].detail
    );
}

#[test]
fn an_api_key_is_refused_over_plain_http_to_another_host() {
    let (_dir, prompts) = prompts_dir();
    std::env::set_var("FEDPREF_TEST_JUDGE_KEY", "sk-test");
    let json = format!(
        r#"{{"prompts_file": {prompts:?}, "base_url": "http://judge.example.com/v1", "model": "m", "api_key_env": "FEDPREF_TEST_JUDGE_KEY"}}"#
    );
    let err = Judge::from_params(&Params::parse(&json).unwrap()).unwrap_err();
    assert!(err.message.contains("in the clear"), "{err}");
}

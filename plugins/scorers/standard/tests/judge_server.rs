//! The `judge` scorer against a real OpenAI-compatible server: llama-cpp-python's
//! `llama_cpp.server` serving the default GGUF (SmolLM2-135M-Instruct) on a free loopback port.
//!
//! Run by `cargo xtask test --judge`, which installs `llama-cpp-python[server]` into
//! `target/judge-venv` (it builds llama.cpp from source) and sets `FEDPREF_JUDGE_PYTHON` and
//! `FEDPREF_JUDGE_MODEL`. Without them this test has nothing to talk to and only says so; it is
//! not part of CI (see the README). Checks: every verdict parses or is counted as unparsed,
//! never failed; a second scoring comes from the cache; pair mode works; once the server is
//! stopped, items fail with a clear message after the retries, in bounded time.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fedpref_plugin_api::{
    testing::scorer::ScriptedHost, Outcome, Params, ScoreItem, ScoreOutput, ScorerFunction,
};
use fedpref_scorer_standard::Judge;

/// The server process, killed on drop.
struct Server {
    child: Child,
    base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Starts `python -m llama_cpp.server` and waits until it lists its model.
fn start(python: &str, model: &str) -> Server {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("fedpref-judge-server-{port}.log"));
    let log_file = std::fs::File::create(&log).expect("server log");
    let child = Command::new(python)
        .args([
            "-m",
            "llama_cpp.server",
            "--model",
            model,
            "--model_alias",
            "smollm2-judge",
        ])
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("python starts");
    let mut server = Server {
        child,
        base_url: format!("http://127.0.0.1:{port}/v1"),
    };
    let started = Instant::now();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    loop {
        if agent
            .get(&format!("{}/models", server.base_url))
            .call()
            .is_ok()
        {
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "llama_cpp.server exited with {status}; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "llama_cpp.server did not answer within 180 s; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "judge server ready at {} after {:.1} s",
        server.base_url,
        started.elapsed().as_secs_f64()
    );
    server
}

fn score(judge: &Judge, items: &[ScoreItem]) -> ScoreOutput {
    // A host without a local model: the HTTP judge must never call it.
    let host = ScriptedHost::new(vec![Err("the HTTP judge called the local model".into())]);
    let services = host.services();
    judge.score(items, &services).expect("scoring runs")
}

fn metric(out: &ScoreOutput, name: &str) -> f64 {
    out.summary
        .iter()
        .find(|m| m.name.as_str() == name)
        .map_or(f64::NAN, |m| m.value)
}

fn item(id: &str, category: &str, question: &str, answer: &str, reference: &str) -> ScoreItem {
    ScoreItem {
        id: id.into(),
        category: category.into(),
        prompt: question.into(),
        response: answer.into(),
        reference: reference.into(),
        features: Default::default(),
        answers: Default::default(),
    }
}

fn judge(prompts: &str, base_url: &str, extra: &str) -> Judge {
    let json = format!(
        r#"{{"prompts_file": {prompts:?}, "base_url": {base_url:?}, "model": "smollm2-judge", "max_tokens": 96, "timeout_s": 120, "concurrency": 2{extra}}}"#
    );
    Judge::from_params(&Params::parse(&json).expect("JSON")).expect("judge params")
}

#[test]
fn llama_cpp_server_judges_caches_and_fails_clearly_when_stopped() {
    let (Ok(python), Ok(model)) = (
        std::env::var("FEDPREF_JUDGE_PYTHON"),
        std::env::var("FEDPREF_JUDGE_MODEL"),
    ) else {
        eprintln!("no judge server to test against: run `cargo xtask test --judge`");
        return;
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let prompts = root.join("assets/bench/mtbench/judge_prompts.jsonl");
    let prompts = prompts.to_str().expect("utf-8 path").to_owned();
    let cache = tempfile::tempdir().expect("cache directory");
    let cache_param = format!(
        r#", "cache_dir": {:?}"#,
        cache.path().to_str().expect("utf-8 path")
    );
    let items = [
        item("81", "writing", "Compose an engaging travel blog post about a recent trip to Hawaii.", "Hawaii was wonderful: I hiked Diamond Head, ate poke in Honolulu and learned hula on Maui.", ""),
        item("82", "writing", "Draft a short professional email asking your supervisor for feedback on a report.", "Dear Ms. Lee, could you share your feedback on the Q3 report's analysis and conclusions? Thank you, Sam", ""),
        item("111", "math", "What is 17 * 3?", "17 * 3 = 51.", "51"),
    ];

    let server = start(&python, &model);
    let started = Instant::now();
    let first = score(&judge(&prompts, &server.base_url, &cache_param), &items);
    eprintln!("3 verdicts in {:.1} s", started.elapsed().as_secs_f64());
    for (item, s) in items.iter().zip(first.items.iter()) {
        eprintln!(
            "item {}: {:?} {} | {:?}",
            item.id,
            s.outcome,
            s.score,
            s.detail.chars().take(160).collect::<String>()
        );
        assert_ne!(s.outcome, Outcome::Failed, "item {}: {}", item.id, s.detail);
        assert!(!s.detail.is_empty(), "item {}: empty reply", item.id);
        if s.outcome == Outcome::Scored {
            assert!(
                (1.0..=10.0).contains(&s.score),
                "item {}: {}",
                item.id,
                s.score
            );
        }
    }
    assert_eq!(metric(&first, "scored") + metric(&first, "unparsed"), 3.0);
    assert_eq!(
        (metric(&first, "judge_calls"), metric(&first, "cache_hits")),
        (3.0, 0.0)
    );

    // The same items again: every verdict from the cache, identical.
    let second = score(&judge(&prompts, &server.base_url, &cache_param), &items);
    assert_eq!(
        (
            metric(&second, "judge_calls"),
            metric(&second, "cache_hits")
        ),
        (0.0, 3.0)
    );
    for (a, b) in first.items.iter().zip(second.items.iter()) {
        assert_eq!(a.detail, b.detail);
    }

    // Pair mode, both orders.
    let pair = [item(
        "81",
        "writing",
        &items[0].prompt,
        &items[0].response,
        "Hawaii is an island.",
    )];
    let pair_out = score(
        &judge(&prompts, &server.base_url, r#", "mode": "pair""#),
        &pair,
    );
    assert_ne!(
        pair_out.items[0].outcome,
        Outcome::Failed,
        "{}",
        pair_out.items[0].detail
    );
    assert_eq!(metric(&pair_out, "judge_calls"), 2.0);

    // A stopped server: a clear error after the retries, no hang.
    let base_url = server.base_url.clone();
    drop(server);
    let started = Instant::now();
    let down = score(
        &judge(
            &prompts,
            &base_url,
            r#", "retries": 2, "backoff_s": 0.2, "timeout_s": 5"#,
        ),
        &items[..1],
    );
    let elapsed = started.elapsed();
    let detail = down.items[0].detail.to_string();
    eprintln!("stopped server: {detail} ({:.1} s)", elapsed.as_secs_f64());
    assert_eq!(down.items[0].outcome, Outcome::Failed);
    assert!(
        detail.contains("after 3 attempts") && detail.contains("check that the server runs"),
        "{detail}"
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

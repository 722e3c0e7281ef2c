//! The `judge` scorer: an LLM judge grading answers with MT-Bench's prompts (Zheng et al. 2023,
//! FastChat `llm_judge`).
//!
//! - `mode = "single"` (default): `single-v1` rates each answer 1–10; items with a reference
//!   answer (MT-Bench math, reasoning, coding) use `single-math-v1`. Score = the rating.
//! - `mode = "pair"`: `pair-v2` compares the item's `response` (the model under test) with the
//!   item's `reference` (another model's answer) twice, in both orders, to cancel position bias;
//!   as FastChat, two verdicts that disagree count as a tie. Score = 1 win, 0.5 tie, 0 loss.
//! - `mode = "multi"`: the paper's JudgeLM protocol ([`crate::multi`]): one prompt holds the
//!   item's `answers` (every method compared, anonymized as Assistant 1..N), one 1–10 score
//!   per answer on the reply's first line, repeated with the answers rotated so each sits in
//!   every position. Per-answer scores (the mean over rotations) in `scores`; `score` is their
//!   mean. Temperature 0.2 by default, as the paper's judge.
//!
//! `read = "text"` parses the judge's generated reply ([`crate::verdict`]); `read =
//! "probabilities"` (the local judge's default) reads the verdict's option probabilities from
//! the host right after the verdict's opening, and scores their expectation
//! ([`crate::probability`]): a continuous rating, or in pair mode the expected result over
//! both orders.
//!
//! The judge is an OpenAI-compatible endpoint ([`crate::chat`], when `base_url` is given;
//! calls run on `concurrency` threads) or the host's local model (`HostServices::generate`,
//! fully offline, one call at a time). Replies are cached on disk ([`crate::cache`]) when
//! `cache_dir` is given. A judge that cannot be reached makes items `Failed` with the error in
//! `detail`; a reply without a readable verdict makes them `Unparsed`; neither stops the run.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use abi_stable::std_types::RString;
use fedpref_plugin_api::{
    check_range, math::mean, ChatMessage, GenerationRequest, HostServicesRef, ItemScore, Metric,
    OptionsRequest, Outcome, Params, PluginError, ScoreItem, ScoreOutput, ScorerFunction,
    ScorerSpec,
};

use crate::{
    cache::VerdictCache,
    chat::{check_key_transport, ChatClient, ChatSettings, Secret},
    multi,
    params_ext::opt_str,
    probability,
    prompts::{self, JudgePrompt},
    verdict::{parse_leading_scores, parse_pair, parse_rating, PairVerdict},
};

/// Where `prompts_file` points by default: what `cargo xtask setup` unpacks, relative to the
/// directory `fedpref` runs in (the repository root).
pub const DEFAULT_PROMPTS_FILE: &str = "assets/bench/mtbench/judge_prompts.jsonl";

/// Calls of an HTTP judge that may fail in a row (each after its retries) before the rest of
/// the batch is not sent.
pub const MAX_FAILURES_IN_A_ROW: usize = 5;

/// Keys that only make sense with an HTTP judge.
const HTTP_ONLY: [&str; 5] = [
    "api_key_env",
    "timeout_s",
    "retries",
    "backoff_s",
    "concurrency",
];

/// How answers are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A 1–10 rating per answer.
    Single,
    /// The answer against `reference`, in both orders.
    Pair,
    /// Every answer of `answers` in one prompt, in every rotation.
    Multi,
}

/// How a verdict is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Parsed from the generated reply.
    Text,
    /// The expectation over the options' probabilities (the local judge only).
    Probabilities,
}

/// Who judges.
#[derive(Debug, Clone)]
pub enum Backend {
    /// An OpenAI-compatible endpoint, `concurrency` calls at a time.
    Http {
        /// The client.
        client: ChatClient,
        /// Parallel calls.
        concurrency: usize,
    },
    /// The host's local model.
    Local {
        /// New tokens per judgement.
        max_new_tokens: u32,
        /// Sampling temperature (0: greedy).
        temperature: f32,
    },
}

/// The MT-Bench judge.
#[derive(Debug)]
pub struct Judge {
    mode: Mode,
    read: Read,
    backend: Backend,
    /// FastChat's prompts (single and pair modes; multi mode writes its own).
    prompts: Option<FastChatPrompts>,
    cache: Option<VerdictCache>,
    /// The judge model's name in cache keys.
    model_key: String,
}

/// The FastChat prompts single and pair modes fill.
#[derive(Debug)]
struct FastChatPrompts {
    /// `single-v1` or `pair-v2` (the prompt for items without a reference in single mode).
    general: JudgePrompt,
    /// `single-math-v1`, for single-mode items with a reference answer.
    with_reference: JudgePrompt,
}

/// One call to the judge: the two messages, and how many answers it scores.
#[derive(Debug, Clone)]
struct Call {
    system: String,
    user: String,
    answers: usize,
}

impl Judge {
    /// Reads the parameters (see the crate docs for the table).
    ///
    /// # Errors
    /// `InvalidParams` for an unreadable prompts file or cache directory, an unset API key
    /// variable, a value out of range, HTTP-only keys without `base_url`, or an unknown key.
    pub fn from_params(params: &Params) -> Result<Self, PluginError> {
        let mode = match params.choice("mode", &["single", "pair", "multi"], "single")? {
            "pair" => Mode::Pair,
            "multi" => Mode::Multi,
            _ => Mode::Single,
        };
        if mode == Mode::Multi {
            if let Some(key) = ["prompts_file", "prompt", "reference_prompt"]
                .iter()
                .find(|k| params.value(k).is_some())
            {
                return Err(PluginError::invalid_params(format!(
                    "`{key}` picks a FastChat prompt, which mode \"multi\" does not use (it writes JudgeLM's multi-answer prompt); drop `{key}`"
                )));
            }
        }
        let prompts_file = PathBuf::from(params.str_or("prompts_file", DEFAULT_PROMPTS_FILE)?);
        let general_name = params
            .str_or(
                "prompt",
                if mode == Mode::Pair {
                    "pair-v2"
                } else {
                    "single-v1"
                },
            )?
            .to_owned();
        let reference_name = params
            .str_or("reference_prompt", "single-math-v1")?
            .to_owned();
        let base_url = opt_str(params, "base_url")?;
        let model = opt_str(params, "model")?;
        let max_tokens = params.whole_or(
            "max_tokens",
            if base_url.is_some() { 2048 } else { 256 },
            1..=1 << 20,
        )?;
        let default_temperature = if mode == Mode::Multi {
            crate::multi::PAPER_TEMPERATURE
        } else {
            0.0
        };
        let temperature = check_range(
            "temperature",
            params.f64_or("temperature", default_temperature)?,
            0.0,
            2.0,
        )?;
        let cache_dir = opt_str(params, "cache_dir")?;
        let read = match params.choice(
            "read",
            &["text", "probabilities"],
            if base_url.is_some() { "text" } else { "probabilities" },
        )? {
            "probabilities" if base_url.is_some() => {
                return Err(PluginError::invalid_params(
                    "`read = \"probabilities\"` needs the host's local judge; drop `base_url` or use `read = \"text\"`",
                ))
            }
            "probabilities" => Read::Probabilities,
            _ => Read::Text,
        };
        let backend = match &base_url {
            Some(base_url) => {
                let model = model.clone().ok_or_else(|| {
                    PluginError::invalid_params("`model` is required with `base_url`: the judge model's name, e.g. \"gpt-4\"")
                })?;
                let api_key = match opt_str(params, "api_key_env")? {
                    None => None,
                    Some(var) => Some(Secret(std::env::var(&var).map_err(|_| {
                        PluginError::invalid_params(format!(
                            "`api_key_env` = {var:?} but that environment variable is not set; export it or drop `api_key_env` for a server without keys"
                        ))
                    })?)),
                };
                if api_key.is_some() {
                    check_key_transport(base_url).map_err(PluginError::invalid_params)?;
                }
                let timeout = check_range(
                    "timeout_s",
                    params.f64_or("timeout_s", 60.0)?,
                    0.001,
                    3600.0,
                )?;
                let retries = params.whole_or("retries", 3, 0..=20)?;
                let backoff =
                    check_range("backoff_s", params.f64_or("backoff_s", 1.0)?, 0.0, 60.0)?;
                let concurrency = params.whole_or("concurrency", 4, 1..=64)?;
                let client = ChatClient::new(ChatSettings {
                    base_url: base_url.clone(),
                    model,
                    api_key,
                    timeout: Duration::from_secs_f64(timeout),
                    retries,
                    backoff: Duration::from_secs_f64(backoff),
                    max_tokens,
                    temperature,
                });
                Backend::Http {
                    client,
                    concurrency,
                }
            }
            None => {
                if let Some(key) = HTTP_ONLY.iter().find(|k| params.value(k).is_some()) {
                    return Err(PluginError::invalid_params(format!(
                        "`{key}` applies to an HTTP judge only; set `base_url` too, or drop `{key}` for the host's local judge"
                    )));
                }
                Backend::Local {
                    max_new_tokens: max_tokens,
                    temperature: temperature as f32,
                }
            }
        };
        params.finish()?;
        let prompts = match mode {
            Mode::Multi => None,
            Mode::Single | Mode::Pair => Some(FastChatPrompts::load(
                &prompts_file,
                &general_name,
                &reference_name,
            )?),
        };
        let cache = cache_dir
            .map(|dir| VerdictCache::open(&PathBuf::from(dir)).map_err(PluginError::invalid_params))
            .transpose()?;
        let model_key = match &backend {
            // The endpoint too: one model name may be served by different servers.
            Backend::Http { client, .. } => format!(
                "{}|{}|t={temperature}|max={max_tokens}",
                client.url(),
                client.model()
            ),
            Backend::Local { .. } if read == Read::Probabilities => format!(
                "local:{}|read=probabilities",
                model.as_deref().unwrap_or("host")
            ),
            Backend::Local { .. } => format!(
                "local:{}|t={temperature}|max={max_tokens}",
                model.as_deref().unwrap_or("host")
            ),
        };
        Ok(Self {
            mode,
            read,
            backend,
            prompts,
            cache,
            model_key,
        })
    }

    /// The calls judging `item`, or why it cannot be judged.
    fn calls(&self, item: &ScoreItem) -> Result<Vec<Call>, String> {
        let question = item.prompt.as_str();
        let render = |prompt: &JudgePrompt, values: &[(&str, &str)]| -> Result<Call, String> {
            Ok(Call {
                system: prompt.system_prompt.clone(),
                user: prompt.render(values)?,
                answers: 1,
            })
        };
        let Some(prompts) = &self.prompts else {
            return multi_calls(item);
        };
        match self.mode {
            Mode::Multi => multi_calls(item),
            Mode::Single if item.reference.is_empty() => {
                Ok(vec![render(&prompts.general, &[("question", question), ("answer", &item.response)])?])
            }
            Mode::Single => Ok(vec![render(
                &prompts.with_reference,
                &[("question", question), ("answer", &item.response), ("ref_answer_1", &item.reference)],
            )?]),
            Mode::Pair if item.reference.is_empty() => {
                Err("pair mode needs the other model's answer in the item's `reference`, which is empty".to_owned())
            }
            Mode::Pair => Ok(vec![
                render(&prompts.general, &[("question", question), ("answer_a", &item.response), ("answer_b", &item.reference)])?,
                render(&prompts.general, &[("question", question), ("answer_a", &item.reference), ("answer_b", &item.response)])?,
            ]),
        }
    }
}

impl FastChatPrompts {
    /// The prompts called `general` and `with_reference` from FastChat's `prompts_file`,
    /// checked to need only the slots single and pair modes fill, so a wrong prompt fails here
    /// and not per item.
    fn load(
        path: &std::path::Path,
        general: &str,
        with_reference: &str,
    ) -> Result<Self, PluginError> {
        let all = prompts::load(path)?;
        let general = prompts::pick(&all, general, path)?;
        let with_reference = prompts::pick(&all, with_reference, path)?;
        let probe: &[(&str, &str)] = &[
            ("question", "q"),
            ("answer", "a"),
            ("ref_answer_1", "r"),
            ("answer_a", "a"),
            ("answer_b", "b"),
        ];
        for prompt in [&general, &with_reference] {
            prompt.render(probe).map_err(PluginError::invalid_params)?;
        }
        Ok(Self {
            general,
            with_reference,
        })
    }
}

/// Multi mode: one call per rotation of the item's answers ([`multi::rotation`]).
fn multi_calls(item: &ScoreItem) -> Result<Vec<Call>, String> {
    let n = item.answers.len();
    if n < 2 {
        return Err(format!(
            "multi mode needs the answers of at least 2 methods in the item's `answers` (it has {n}); the host fills them for a benchmark with `across_methods = true`"
        ));
    }
    Ok((0..n)
        .map(|r| {
            let shown: Vec<&str> = multi::rotation(n, r)
                .into_iter()
                .map(|a| item.answers[a].as_str())
                .collect();
            Call {
                system: multi::SYSTEM.to_owned(),
                user: multi::render(&item.prompt, &shown),
                answers: n,
            }
        })
        .collect())
}

impl Judge {
    /// Runs every call not answered by the cache; returns replies in call order.
    fn run_calls(
        &self,
        calls: &[Call],
        host: &HostServicesRef<'_>,
        stats: &mut Stats,
    ) -> Result<Vec<Result<String, String>>, PluginError> {
        let keys: Vec<String> = calls
            .iter()
            .map(|c| VerdictCache::key(&self.model_key, &c.system, &c.user))
            .collect();
        let mut replies: Vec<Option<Result<String, String>>> = keys
            .iter()
            .map(|k| self.cache.as_ref().and_then(|c| c.get(k)).map(Ok))
            .collect();
        stats.cache_hits = replies.iter().filter(|r| r.is_some()).count();
        let todo: Vec<usize> = (0..calls.len()).filter(|&i| replies[i].is_none()).collect();
        stats.judge_calls = todo.len();
        let store = |i: usize, reply: &Result<String, String>| -> usize {
            match (reply, &self.cache) {
                (Ok(text), Some(cache)) => {
                    usize::from(cache.put(&keys[i], &self.model_key, text).is_err())
                }
                _ => 0,
            }
        };
        match &self.backend {
            Backend::Local {
                max_new_tokens,
                temperature,
            } => {
                for &i in &todo {
                    if self.read == Read::Probabilities {
                        let reply = self.read_options(&calls[i], host);
                        stats.cache_errors += store(i, &reply);
                        replies[i] = Some(reply);
                        continue;
                    }
                    let request = GenerationRequest {
                        messages: vec![
                            message("system", &calls[i].system),
                            message("user", &calls[i].user),
                        ]
                        .into(),
                        max_new_tokens: *max_new_tokens,
                        temperature: *temperature,
                        top_p: 1.0,
                    };
                    let reply = host
                        .generate(&request)
                        .into_result()
                        .map(|r| r.into_string())
                        .map_err(|e| format!("the host's local judge failed: {e}"));
                    stats.cache_errors += store(i, &reply);
                    replies[i] = Some(reply);
                }
            }
            Backend::Http {
                client,
                concurrency,
            } => {
                // A judge that keeps failing is down: stop calling it rather than wait out
                // every item's retries.
                let failures_in_a_row = AtomicUsize::new(0);
                let results = concurrently(&todo, *concurrency, |i| {
                    let failed = failures_in_a_row.load(Ordering::SeqCst);
                    if failed >= MAX_FAILURES_IN_A_ROW {
                        let skipped = Err(format!(
                            "not sent: the judge {} failed {failed} calls in a row (each after its retries); fix the server and run again, verdicts given so far are cached",
                            client.url()
                        ));
                        return (skipped, 0);
                    }
                    let reply = client.complete(&calls[i].system, &calls[i].user);
                    match &reply {
                        Ok(_) => failures_in_a_row.store(0, Ordering::SeqCst),
                        Err(_) => {
                            failures_in_a_row.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    let cache_error = store(i, &reply);
                    (reply, cache_error)
                })?;
                for (i, (reply, cache_error)) in results {
                    stats.cache_errors += cache_error;
                    replies[i] = Some(reply);
                }
            }
        }
        replies
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.ok_or_else(|| {
                    PluginError::failed(format!(
                        "judge call {i} got no reply (a worker stopped early)"
                    ))
                })
            })
            .collect()
    }
}

impl Judge {
    /// The verdict's option log-probs for `call` from the host, as the JSON list the cache
    /// keeps.
    fn read_options(&self, call: &Call, host: &HostServicesRef<'_>) -> Result<String, String> {
        let (prefix, options, separator): (&str, &[&str], &str) = match self.mode {
            Mode::Single => (probability::RATING_PREFIX, &probability::RATINGS, ""),
            Mode::Pair => (probability::PAIR_PREFIX, &probability::PAIR_OPTIONS, ""),
            // JudgeLM's reply opens with the scores, separated by spaces.
            Mode::Multi => ("", &probability::RATINGS, " "),
        };
        let request = OptionsRequest {
            messages: vec![message("system", &call.system), message("user", &call.user)].into(),
            reply_prefix: prefix.into(),
            options: options.iter().map(|o| RString::from(*o)).collect(),
            positions: call.answers as u32,
            separator: separator.into(),
        };
        let logprobs = host
            .option_logprobs(&request)
            .into_result()
            .map_err(|e| format!("the host's local judge failed: {e}"))?;
        serde_json::to_string(logprobs.as_slice()).map_err(|e| e.to_string())
    }

    /// One item's verdict from its replies.
    fn verdict(&self, replies: &[&str]) -> Verdict {
        if self.mode == Mode::Multi {
            return self.multi_verdict(replies);
        }
        let (outcome, score, detail, disagree) = self.read_verdict(replies);
        let per_order = match (self.mode, self.read, outcome) {
            (Mode::Pair, Read::Text, Outcome::Scored) => parse_pair(replies[0])
                .zip(parse_pair(replies[1]))
                .map(|(first, second)| vec![as_model(first, true), as_model(second, false)])
                .unwrap_or_default(),
            (Mode::Pair, Read::Probabilities, Outcome::Scored) => {
                let (first, second) = (logprob_list(replies[0]), logprob_list(replies[1]));
                probability::pair_orders(&first, &second)
                    .map(|orders| orders.to_vec())
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        Verdict {
            outcome,
            score,
            detail,
            disagree,
            per_order,
        }
    }

    /// Multi mode: one reply per rotation, each read as one score per position, combined into
    /// one score per answer.
    fn multi_verdict(&self, replies: &[&str]) -> Verdict {
        let n = replies.len();
        let by_position: Option<Vec<Vec<f64>>> = replies
            .iter()
            .map(|reply| match self.read {
                Read::Text => parse_leading_scores(reply, n),
                Read::Probabilities => logprob_list(reply)
                    .chunks(probability::RATINGS.len())
                    .map(|chunk| probability::expected_rating(chunk).map(|(rating, _)| rating))
                    .collect::<Option<Vec<f64>>>()
                    .filter(|scores| scores.len() == n),
            })
            .collect();
        let detail = multi_detail(self.read, &by_position, replies);
        match by_position.as_deref().and_then(multi::combine) {
            Some(combined) => Verdict {
                outcome: Outcome::Scored,
                score: mean(combined.scores.iter().copied()),
                detail,
                disagree: !combined.consistent,
                per_order: combined.scores,
            },
            None => Verdict {
                outcome: Outcome::Unparsed,
                score: f64::NAN,
                detail,
                disagree: false,
                per_order: Vec::new(),
            },
        }
    }

    /// One item's outcome, score and detail from its replies, and whether its two pair
    /// verdicts disagreed (single and pair modes; [`Self::verdict`] sends multi mode to
    /// [`Self::multi_verdict`] before this).
    fn read_verdict(&self, replies: &[&str]) -> (Outcome, f64, String, bool) {
        match (self.mode, self.read) {
            (Mode::Single, Read::Text) => match parse_rating(replies[0], 1.0, 10.0) {
                Some(rating) => (Outcome::Scored, rating, replies[0].to_owned(), false),
                None => (Outcome::Unparsed, f64::NAN, replies[0].to_owned(), false),
            },
            (Mode::Single, Read::Probabilities) => {
                let logprobs = logprob_list(replies[0]);
                let detail = probability::describe(&probability::RATINGS, &logprobs);
                match probability::expected_rating(&logprobs) {
                    Some((rating, mass)) => (
                        Outcome::Scored,
                        rating,
                        format!("expected rating {rating:.3} (ratings' probability {mass:.3}): {detail}"),
                        false,
                    ),
                    None => (Outcome::Unparsed, f64::NAN, detail, false),
                }
            }
            (Mode::Pair | Mode::Multi, Read::Text) => {
                let (outcome, score, disagree) = pair_outcome(replies[0], replies[1]);
                let detail = format!(
                    "[answer first]\n{}\n\n[answer second]\n{}",
                    replies[0], replies[1]
                );
                (outcome, score, detail, disagree)
            }
            (Mode::Pair | Mode::Multi, Read::Probabilities) => {
                let (first, second) = (logprob_list(replies[0]), logprob_list(replies[1]));
                let detail = format!(
                    "[answer first] {} [answer second] {}",
                    probability::describe(&probability::PAIR_OPTIONS, &first),
                    probability::describe(&probability::PAIR_OPTIONS, &second)
                );
                match probability::pair_result(&first, &second) {
                    Some((score, consistent)) => (Outcome::Scored, score, detail, !consistent),
                    None => (Outcome::Unparsed, f64::NAN, detail, false),
                }
            }
        }
    }
}

/// One item's verdict.
struct Verdict {
    outcome: Outcome,
    score: f64,
    detail: String,
    /// The two pair verdicts disagreed once mapped to the model.
    disagree: bool,
    /// Pair mode: the model's result with its answer shown first, then second.
    per_order: Vec<f64>,
}

/// A multi-mode item's detail: per rotation, the answers in the order shown and the scores
/// read; the judge's replies when text was read.
fn multi_detail(read: Read, by_position: &Option<Vec<Vec<f64>>>, replies: &[&str]) -> String {
    let n = replies.len();
    let mut lines = Vec::with_capacity(n);
    for (r, reply) in replies.iter().enumerate() {
        let shown: Vec<String> = multi::rotation(n, r)
            .iter()
            .map(|a| (a + 1).to_string())
            .collect();
        let scores = by_position
            .as_ref()
            .and_then(|b| b.get(r))
            .map_or("unread".to_owned(), |s| {
                s.iter()
                    .map(|v| format!("{v:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        let mut line = format!("[answers shown {}] scores {scores}", shown.join(" "));
        if read == Read::Text {
            line.push('\n');
            line.push_str(reply);
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// The log-probs a cached probability reply holds (empty when it holds none). JSON has no
/// infinities: serde_json writes `-inf` (an impossible option) as `null`, read back here.
fn logprob_list(reply: &str) -> Vec<f64> {
    serde_json::from_str::<Vec<Option<f64>>>(reply)
        .map(|values| {
            values
                .into_iter()
                .map(|v| v.unwrap_or(f64::NEG_INFINITY))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `work` on every index of `todo` with up to `threads` threads; returns `(index, result)`
/// pairs in no particular order.
///
/// # Errors
/// `Failed` when a worker thread panicked.
fn concurrently<T: Send>(
    todo: &[usize],
    threads: usize,
    work: impl Fn(usize) -> T + Sync,
) -> Result<Vec<(usize, T)>, PluginError> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(todo.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                        done.push((i, work(i)));
                    }
                    done
                })
            })
            .collect();
        let mut all = Vec::with_capacity(todo.len());
        for handle in handles {
            all.extend(
                handle
                    .join()
                    .map_err(|_| PluginError::failed("a judge worker thread panicked"))?,
            );
        }
        Ok(all)
    })
}

fn message(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: content.into(),
    }
}

/// Counters for the summary.
#[derive(Debug, Default)]
struct Stats {
    cache_hits: usize,
    judge_calls: usize,
    cache_errors: usize,
}

/// The model's result in one order: 1 win, 0.5 tie, 0 loss.
fn as_model(verdict: PairVerdict, model_is_a: bool) -> f64 {
    match (verdict, model_is_a) {
        (PairVerdict::Tie, _) => 0.5,
        (PairVerdict::A, true) | (PairVerdict::B, false) => 1.0,
        _ => 0.0,
    }
}

/// The outcome of one pair-mode item from its two replies (A = the model first, then B first).
fn pair_outcome(first: &str, second: &str) -> (Outcome, f64, bool) {
    let (Some(v1), Some(v2)) = (parse_pair(first), parse_pair(second)) else {
        return (Outcome::Unparsed, f64::NAN, false);
    };
    let (s1, s2) = (as_model(v1, true), as_model(v2, false));
    if s1 == s2 {
        (Outcome::Scored, s1, false)
    } else {
        (Outcome::Scored, 0.5, true)
    }
}

impl ScorerFunction for Judge {
    fn spec(&self) -> ScorerSpec {
        ScorerSpec {
            needs_generation: true,
            needs_pair_logratios: false,
        }
    }

    fn score(
        &self,
        items: &[ScoreItem],
        host: &HostServicesRef<'_>,
    ) -> Result<ScoreOutput, PluginError> {
        let mut plans: Vec<Result<std::ops::Range<usize>, String>> =
            Vec::with_capacity(items.len());
        let mut calls = Vec::new();
        for item in items {
            plans.push(self.calls(item).map(|c| {
                let start = calls.len();
                calls.extend(c);
                start..calls.len()
            }));
        }
        let mut stats = Stats::default();
        let replies = self.run_calls(&calls, host, &mut stats)?;
        let mut scores = Vec::with_capacity(items.len());
        let mut inconsistent = 0usize;
        for (item, plan) in items.iter().zip(plans) {
            let item_replies: Result<Vec<&str>, String> = match plan {
                Err(why) => Err(why),
                Ok(range) => replies[range]
                    .iter()
                    .map(|r| r.as_deref().map_err(Clone::clone))
                    .collect(),
            };
            let verdict = match item_replies {
                Err(error) => Verdict {
                    outcome: Outcome::Failed,
                    score: f64::NAN,
                    detail: error,
                    disagree: false,
                    per_order: Vec::new(),
                },
                Ok(r) => self.verdict(&r),
            };
            inconsistent += usize::from(verdict.disagree);
            scores.push(ItemScore {
                id: item.id.clone(),
                outcome: verdict.outcome,
                score: verdict.score,
                detail: verdict.detail.into(),
                scores: verdict.per_order.into(),
            });
        }
        Ok(ScoreOutput {
            summary: self.summary(items, &scores, &stats, inconsistent).into(),
            items: scores.into(),
        })
    }
}

impl Judge {
    fn summary(
        &self,
        items: &[ScoreItem],
        scores: &[ItemScore],
        stats: &Stats,
        inconsistent: usize,
    ) -> Vec<Metric> {
        let count = |o: Outcome| scores.iter().filter(|s| s.outcome == o).count() as f64;
        let scored = || {
            scores
                .iter()
                .filter(|s| s.outcome == Outcome::Scored)
                .map(|s| s.score)
        };
        let mut summary = vec![Metric::new("mean_score", mean(scored()))];
        if self.mode == Mode::Multi {
            summary.extend(self.multi_summary(scores));
        }
        if self.mode != Mode::Single {
            let n = count(Outcome::Scored);
            let share = |v: f64| {
                if n > 0.0 {
                    scored().filter(|s| *s == v).count() as f64 / n
                } else {
                    f64::NAN
                }
            };
            if self.mode == Mode::Pair && self.read == Read::Text {
                summary.extend([
                    Metric::new("win_rate", share(1.0)),
                    Metric::new("tie_rate", share(0.5)),
                    Metric::new("loss_rate", share(0.0)),
                ]);
            }
            summary.extend([
                Metric::new("inconsistent", inconsistent as f64),
                Metric::new(
                    "position_consistency",
                    if n > 0.0 {
                        1.0 - inconsistent as f64 / n
                    } else {
                        f64::NAN
                    },
                ),
            ]);
        }
        summary.extend([
            Metric::new("n", scores.len() as f64),
            Metric::new("scored", count(Outcome::Scored)),
            Metric::new("unparsed", count(Outcome::Unparsed)),
            Metric::new("failed", count(Outcome::Failed)),
            Metric::new("judge_calls", stats.judge_calls as f64),
            Metric::new("cache_hits", stats.cache_hits as f64),
            Metric::new("cache_errors", stats.cache_errors as f64),
        ]);
        let mut by_category: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for (item, s) in items.iter().zip(scores) {
            if !item.category.is_empty() && s.outcome == Outcome::Scored {
                by_category
                    .entry(item.category.as_str())
                    .or_default()
                    .push(s.score);
            }
        }
        summary.extend(
            by_category
                .into_iter()
                .map(|(c, v)| Metric::new(&format!("mean_score/{c}"), mean(v))),
        );
        summary
    }
}

impl Judge {
    /// Multi mode: each answer position's mean score over the scored items
    /// (`mean_score/answer_1` ...), the position of the item's `answers`, not of the prompt.
    fn multi_summary(&self, scores: &[ItemScore]) -> Vec<Metric> {
        let n = scores.iter().map(|s| s.scores.len()).max().unwrap_or(0);
        (0..n)
            .map(|k| {
                let values = scores
                    .iter()
                    .filter(|s| s.outcome == Outcome::Scored)
                    .filter_map(|s| s.scores.get(k).copied());
                Metric::new(&format!("mean_score/answer_{}", k + 1), mean(values))
            })
            .collect()
    }
}

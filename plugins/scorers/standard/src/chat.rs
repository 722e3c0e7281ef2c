//! A blocking client for an OpenAI-compatible `POST {base_url}/chat/completions` endpoint
//! (OpenAI, vLLM, llama.cpp's server, llama-cpp-python, Ollama), with a per-request timeout and
//! retries with exponential back-off.
//!
//! Retried: connection failures, timeouts, malformed HTTP, `408`, `429` and `5xx` (waiting
//! `backoff · 2^k` seconds before retry `k + 1`, capped at a minute and jittered down by up to
//! half so parallel callers do not retry in step, or the server's `Retry-After` if longer, up
//! to a minute). Not retried: other `4xx` (a wrong model name or key does not heal by waiting), and a
//! `200` whose body is not a chat completion. Every error names the URL, the attempts made and
//! the last cause, so a judge that is down is a clear message rather than a hang.
//!
//! The API key is a [`Secret`]: no `Debug` output shows it, and [`check_key_transport`]
//! refuses to send it over plain `http` to a host other than this machine.
//!
//! Fed by the judge's parameters; feeds [`crate::judge`].

use std::{
    fmt, thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};

/// A value that never shows in `Debug` output (an API key).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Connection settings of a judge endpoint.
#[derive(Debug, Clone)]
pub struct ChatClient {
    url: String,
    model: String,
    api_key: Option<Secret>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_tokens: u32,
    temperature: f64,
    agent: ureq::Agent,
}

/// Longest wait a `Retry-After` header may impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Longest wait between two attempts of the exponential back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Settings of a [`ChatClient`].
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// E.g. `http://127.0.0.1:8000/v1` (the URL before `/chat/completions`).
    pub base_url: String,
    /// The `model` field of each request.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when present.
    pub api_key: Option<Secret>,
    /// Limit on each whole request (connect, send, wait, read).
    pub timeout: Duration,
    /// Further attempts after the first fails in a retryable way.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
    /// `temperature` of each request (0: the judge's most likely reply).
    pub temperature: f64,
}

/// Why one attempt failed.
enum Attempt {
    /// Worth another try, after at least this long (from `Retry-After`).
    Retry(String, Option<Duration>),
    /// Final.
    Fatal(String),
}

impl ChatClient {
    /// A client for `settings`.
    pub fn new(settings: ChatSettings) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(settings.timeout)
            .timeout(settings.timeout)
            .build();
        Self {
            url: format!(
                "{}/chat/completions",
                settings.base_url.trim_end_matches('/')
            ),
            model: settings.model,
            api_key: settings.api_key,
            timeout: settings.timeout,
            retries: settings.retries,
            backoff: settings.backoff,
            max_tokens: settings.max_tokens,
            temperature: settings.temperature,
            agent,
        }
    }

    /// The endpoint's full URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The judge model's name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The assistant's reply to `system` + `user`.
    ///
    /// # Errors
    /// A lowercase message naming the URL, the number of attempts and the last cause.
    pub fn complete(&self, system: &str, user: &str) -> Result<String, String> {
        let body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        })
        .to_string();
        let attempts = self.retries + 1;
        for attempt in 0..attempts {
            let last = attempt + 1 == attempts;
            match self.attempt(&body) {
                Ok(reply) => return Ok(reply),
                Err(Attempt::Fatal(cause)) => {
                    return Err(format!("judge {} failed on attempt {}: {cause}", self.url, attempt + 1))
                }
                Err(Attempt::Retry(cause, _)) if last => {
                    return Err(format!(
                        "judge {} failed after {attempts} attempt{} (timeout {:.1} s each): {cause}; check that the server runs and `base_url` is right",
                        self.url,
                        if attempts == 1 { "" } else { "s" },
                        self.timeout.as_secs_f64()
                    ))
                }
                Err(Attempt::Retry(_, retry_after)) => {
                    let backoff = backoff_wait(self.backoff, attempt, jitter());
                    thread::sleep(backoff.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER)));
                }
            }
        }
        // `attempts >= 1`, and its last iteration returns on every branch.
        Err(format!("judge {} was not called", self.url))
    }

    fn attempt(&self, body: &str) -> Result<String, Attempt> {
        let mut request = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json");
        if let Some(Secret(key)) = &self.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        match request.send_string(body) {
            Ok(response) => {
                let text = response
                    .into_string()
                    .map_err(|e| Attempt::Retry(format!("reading the reply failed: {e}"), None))?;
                parse_completion(&text).map_err(Attempt::Fatal)
            }
            Err(ureq::Error::Status(code, response)) => {
                let retry_after = response
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64);
                let text = response.into_string().unwrap_or_default();
                let cause = format!("http status {code}: {}", snippet(&error_message(&text)));
                if code == 408 || code == 429 || code >= 500 {
                    Err(Attempt::Retry(cause, retry_after))
                } else {
                    Err(Attempt::Fatal(cause))
                }
            }
            Err(ureq::Error::Transport(transport)) => {
                use ureq::ErrorKind as K;
                let cause = transport.to_string();
                match transport.kind() {
                    K::ConnectionFailed
                    | K::Io
                    | K::BadStatus
                    | K::BadHeader
                    | K::Dns
                    | K::ProxyConnect => Err(Attempt::Retry(cause, None)),
                    _ => Err(Attempt::Fatal(cause)),
                }
            }
        }
    }
}

/// The wait before retry `attempt + 1`: `base · 2^attempt`, capped at [`MAX_BACKOFF`], scaled
/// by `jitter` in [0.5, 1].
pub fn backoff_wait(base: Duration, attempt: u32, jitter: f64) -> Duration {
    base.saturating_mul(1u32 << attempt.min(20))
        .min(MAX_BACKOFF)
        .mul_f64(jitter.clamp(0.5, 1.0))
}

/// A factor in [0.5, 1] that differs between calls (the clock's nanoseconds, mixed).
fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    0.5 + 0.5 * (mixed as f64 / (1u64 << 53) as f64)
}

/// Refuses to send an API key in the clear: over `http`, only to this machine (`localhost`,
/// `127.0.0.0/8`, `::1`).
///
/// # Errors
/// A message naming the host and what to do.
pub fn check_key_transport(base_url: &str) -> Result<(), String> {
    let Some(rest) = base_url.strip_prefix("http://") else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "`base_url` {base_url:?} is plain http to {host:?}: the API key would travel in the clear; use https, or a server on this machine"
        ))
    }
}

/// The reply text of a chat-completions response body.
///
/// # Errors
/// A message quoting the start of the body when it is not a chat completion.
pub fn parse_completion(text: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("the reply is not JSON ({e}): {}", snippet(text)))?;
    value["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "the reply has no choices[0].message.content: {}",
                snippet(text)
            )
        })
}

/// The `error.message` of an OpenAI-style error body, else the body itself.
fn error_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or_else(|| v["error"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| text.trim().to_owned())
}

/// At most 300 characters of `text`, on one line.
fn snippet(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut cut: String = one_line.chars().take(300).collect();
    if one_line.chars().count() > 300 {
        cut.push('…');
    }
    if cut.is_empty() {
        "(empty body)".to_owned()
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_jitters_down_by_at_most_half() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff_wait(base, 0, 1.0), Duration::from_secs(1));
        assert_eq!(backoff_wait(base, 3, 1.0), Duration::from_secs(8));
        assert_eq!(backoff_wait(base, 30, 1.0), MAX_BACKOFF);
        assert_eq!(backoff_wait(base, 3, 0.5), Duration::from_secs(4));
        assert_eq!(backoff_wait(base, 3, 0.1), Duration::from_secs(4));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.5..=1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn keys_go_in_the_clear_only_to_this_machine() {
        for ok in [
            "https://api.example.com/v1",
            "http://127.0.0.1:8000/v1",
            "http://localhost/v1",
            "http://[::1]:8080/v1",
            "http://127.5.0.1/v1",
        ] {
            assert_eq!(check_key_transport(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://api.example.com/v1",
            "http://10.0.0.2:8000/v1",
            "http://localhost.example.com/v1",
            "http://user@192.168.1.1/v1",
        ] {
            let err = check_key_transport(bad).unwrap_err();
            assert!(err.contains("in the clear"), "{bad}: {err}");
        }
    }

    #[test]
    fn no_debug_output_shows_the_key() {
        let client = ChatClient::new(ChatSettings {
            base_url: "https://x/v1".into(),
            model: "m".into(),
            api_key: Some(Secret("sk-very-secret".into())),
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff: Duration::ZERO,
            max_tokens: 1,
            temperature: 0.0,
        });
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("sk-very-secret") && shown.contains("***"),
            "{shown}"
        );
    }
}

//! A tiny scripted HTTP/1.1 server on 127.0.0.1:0 for the judge's error paths: each request
//! gets the next scripted reply (the last one repeats): a chat completion, an error status, a
//! reply after a delay, a closed connection, or a body that is not JSON. Real sockets, so the
//! client's timeouts and retries are exercised as in use.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    thread,
    time::Duration,
};

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200` with a chat completion whose content is this text.
    Completion(String),
    /// This status with this body and optional `Retry-After` seconds.
    Status(u16, String, Option<u32>),
    /// Waits this long, then answers with the completion.
    Slow(Duration, String),
    /// Reads the request and closes the connection without a word.
    Close,
    /// `200` with this raw body.
    Raw(String),
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header lines, lowercased names.
    pub headers: Vec<(String, String)>,
    /// The body (a JSON chat request).
    pub body: String,
}

impl Received {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A running server; stopped on drop.
pub struct Server {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Starts a server answering with `script`.
    pub fn start(script: Vec<Reply>) -> Server {
        assert!(!script.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        {
            let (received, stop) = (received.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (received, next, script) = (received.clone(), next.clone(), script.clone());
                    // One thread per connection, so a slow reply does not hold up the next one.
                    thread::spawn(move || handle(stream, &received, &next, &script));
                }
            });
        }
        Server {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            port,
            received,
            stop,
        }
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A base URL where nothing listens: a port bound, then released.
pub fn closed_base_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/v1")
}

/// A chat-completions response body with `content`.
pub fn completion_body(content: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "test-judge",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
    .to_string()
}

fn handle(
    mut stream: TcpStream,
    received: &Mutex<Vec<Received>>,
    next: &AtomicUsize,
    script: &[Reply],
) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let index = next.fetch_add(1, Ordering::SeqCst).min(script.len() - 1);
    received.lock().unwrap().push(request);
    let (status, body, retry_after) = match &script[index] {
        Reply::Completion(content) => (200, completion_body(content), None),
        Reply::Status(code, body, retry_after) => (*code, body.clone(), *retry_after),
        Reply::Slow(delay, content) => {
            thread::sleep(*delay);
            (200, completion_body(content), None)
        }
        Reply::Close => return,
        Reply::Raw(body) => (200, body.clone(), None),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    );
    if let Some(seconds) = retry_after {
        head.push_str(&format!("Retry-After: {seconds}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if line.is_empty() {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.push((name.trim().to_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

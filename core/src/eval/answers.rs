//! Answers to benchmark prompts: each prompt rendered with the model's chat template, decoded
//! in left-padded batches of similar length ([`generate_batch`], greedy unless a temperature is
//! set), and cached on disk by (model, adapter, rendered prompt, settings), so evaluating the
//! same checkpoint again costs no generation.
//!
//! The cache is `eval/cache/answers.jsonl` in the run directory: one `{"key", "answer",
//! "tokens"}` row per answer, appended; a row that does not parse (a killed write) is skipped.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    time::Instant,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use fedpref_rundir::JsonLines;

use crate::{Error, Result};
use fedpref_model::{
    generate_batch, ChatMessage, ChatTemplate, Decoder, GenerateConfig, TextTokenizer,
};

/// Bumped when the key's parts change, so old rows are never misread.
const KEY_VERSION: &str = "fedpref-answer-v1";

/// SHA-256 (hex) over length-prefixed `parts`.
pub fn hash_parts(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The identity of the adapter's values: a hash of the flat f32 parameters (empty: none).
pub fn adapter_hash(params: &[f32]) -> String {
    if params.is_empty() {
        return "base".to_owned();
    }
    let bytes: Vec<u8> = params.iter().flat_map(|v| v.to_le_bytes()).collect();
    hash_parts(&[&bytes])
}

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The key ([`AnswerCache::key`]).
    pub key: String,
    /// The decoded answer.
    pub answer: String,
    /// Tokens generated (stop token included).
    pub tokens: usize,
}

/// The answers cache of a run directory.
pub struct AnswerCache {
    entries: HashMap<String, CachedAnswer>,
    path: PathBuf,
    log: Option<JsonLines>,
}

impl AnswerCache {
    /// Reads `path` if it exists; new answers are appended to it.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it exists but cannot be read.
    pub fn open(path: &Path) -> Result<Self> {
        let mut entries = HashMap::new();
        if path.exists() {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(|e| Error::io(path, e))?;
                if let Ok(entry) = serde_json::from_str::<CachedAnswer>(&line) {
                    entries.insert(entry.key.clone(), entry);
                }
            }
        }
        Ok(Self {
            entries,
            path: path.to_path_buf(),
            log: None,
        })
    }

    /// A cache that keeps answers in memory only.
    pub fn in_memory() -> Self {
        Self {
            entries: HashMap::new(),
            path: PathBuf::new(),
            log: None,
        }
    }

    /// The key of one answer.
    pub fn key(model: &str, adapter: &str, rendered_prompt: &str, cfg: &GenerateConfig) -> String {
        let settings = format!(
            "{}|{}|{}|{}",
            cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed
        );
        hash_parts(&[
            KEY_VERSION.as_bytes(),
            model.as_bytes(),
            adapter.as_bytes(),
            rendered_prompt.as_bytes(),
            settings.as_bytes(),
        ])
    }

    /// The cached answer of `key`.
    pub fn get(&self, key: &str) -> Option<&CachedAnswer> {
        self.entries.get(key)
    }

    /// Stores an answer (appending it to the file unless in memory).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn put(&mut self, entry: CachedAnswer) -> Result<()> {
        if !self.path.as_os_str().is_empty() {
            if self.log.is_none() {
                if let Some(parent) = self.path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                self.log = Some(JsonLines::open(&self.path, None)?);
            }
            if let Some(log) = self.log.as_mut() {
                log.append(&entry)?;
            }
        }
        self.entries.insert(entry.key.clone(), entry);
        Ok(())
    }

    /// Flushes appended answers to disk.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(log) = self.log.as_mut() {
            log.sync()?;
        }
        Ok(())
    }
}

/// The model and text handling that answers prompts.
pub struct Answerer<'a> {
    /// The decoder (merged with the adapter, for speed).
    pub decoder: &'a Decoder,
    /// Its tokenizer.
    pub tokenizer: &'a TextTokenizer,
    /// Its chat template.
    pub template: &'a ChatTemplate,
    /// Prompts per batch.
    pub batch_size: usize,
    /// The base model's identity (path, size, mtime), for cache keys.
    pub model: &'a str,
    /// [`adapter_hash`] of the adapter merged into `decoder`.
    pub adapter: &'a str,
}

/// One answer and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The decoded text, trimmed.
    pub text: String,
    /// Tokens generated (stop token included).
    pub tokens: usize,
    /// Taken from the cache.
    pub cached: bool,
}

/// Generation counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Tokens generated now (not cached).
    pub tokens: usize,
    /// Seconds spent generating.
    pub seconds: f64,
    /// Answers served from the cache.
    pub cached: usize,
}

impl GenerationStats {
    /// Adds the counts of another call.
    pub fn add(&mut self, other: &GenerationStats) {
        self.tokens += other.tokens;
        self.seconds += other.seconds;
        self.cached += other.cached;
    }
}

impl Answerer<'_> {
    /// Answers every prompt (a user message each) with `cfg`, using and filling `cache`.
    ///
    /// # Errors
    /// Template, tokenizer, model and cache I/O errors.
    pub fn answer_all(
        &self,
        prompts: &[&str],
        cfg: &GenerateConfig,
        cache: &mut AnswerCache,
    ) -> Result<(Vec<Answer>, GenerationStats)> {
        let mut stats = GenerationStats::default();
        let mut rendered = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            rendered.push(
                self.template
                    .render(&[ChatMessage::new("user", *prompt)], true)?,
            );
        }
        let keys: Vec<String> = rendered
            .iter()
            .map(|r| AnswerCache::key(self.model, self.adapter, r, cfg))
            .collect();
        let mut answers: Vec<Option<Answer>> = keys
            .iter()
            .map(|k| {
                cache.get(k).map(|c| Answer {
                    text: c.answer.clone(),
                    tokens: c.tokens,
                    cached: true,
                })
            })
            .collect();
        stats.cached = answers.iter().filter(|a| a.is_some()).count();
        let mut todo: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, text) in rendered
            .iter()
            .enumerate()
            .filter(|(i, _)| answers[*i].is_none())
        {
            todo.push((i, self.tokenizer.encode(text)?));
        }
        // Similar lengths together: less padding per batch.
        todo.sort_by_key(|(_, ids)| ids.len());
        let stop_ids = self.tokenizer.stop_ids();
        let started = Instant::now();
        for chunk in todo.chunks(self.batch_size.max(1)) {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|(_, ids)| ids.clone()).collect();
            let outputs = generate_batch(self.decoder, &ids, cfg, &stop_ids)?;
            for ((i, _), out) in chunk.iter().zip(outputs) {
                let text = self.tokenizer.decode(&out, true)?.trim().to_owned();
                stats.tokens += out.len();
                cache.put(CachedAnswer {
                    key: keys[*i].clone(),
                    answer: text.clone(),
                    tokens: out.len(),
                })?;
                answers[*i] = Some(Answer {
                    text,
                    tokens: out.len(),
                    cached: false,
                });
            }
        }
        stats.seconds = started.elapsed().as_secs_f64();
        cache.sync()?;
        let answers = answers
            .into_iter()
            .map(|a| {
                a.ok_or_else(|| {
                    Error::from(fedpref_model::Error::input(
                        "an eval prompt got no answer".to_owned(),
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((answers, stats))
    }
}

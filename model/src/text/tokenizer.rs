//! The text tokenizer ([`TextTokenizer`]): a Hugging Face `tokenizers` tokenizer plus the special
//! tokens and chat template the model ships with.
//!
//! Two sources: a Hugging Face directory (`tokenizer.json`, `tokenizer_config.json`), or a GGUF
//! file, whose byte-level BPE (`tokenizer.ggml.model = gpt2`) is rebuilt from
//! `tokenizer.ggml.tokens` / `merges` / `token_type` and a pre-tokenizer chosen by
//! `tokenizer.ggml.pre` (llama.cpp's names: `smollm`, `qwen2`, `llama-bpe`, `gpt-2`, ...).
//! Control tokens (`<|im_start|>`) become special added tokens, so they are matched whole in text.
//! Feeds the chat template code ([`crate::text::chat_template`]) and generation.

use std::path::Path;

use serde_json::{json, Value};

use crate::io::gguf::GgufFile;
use crate::{Error, Result};

/// A tokenizer with the model's special tokens and chat template.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
    chat_template: Option<String>,
    add_bos: bool,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

fn tok_err(message: impl Into<String>) -> Error {
    Error::Tokenizer {
        message: message.into(),
    }
}

/// GPT-2's pre-tokenizer regex (used inside `ByteLevel` with `use_regex`).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.json` pre-tokenizer and normalizer matching llama.cpp's `tokenizer.ggml.pre`.
fn pre_tokenizer_for(pre: &str) -> Result<(Value, Value)> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |re: &str| json!({"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false});
    Ok(match pre {
        // Digits one by one, then GPT-2's regex (llama.cpp: "\p{N}" then the GPT-2 expression).
        "smollm" => (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            Value::Null,
        ),
        "qwen2" | "deepseek-r1-qwen" => (
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(false)]}),
            json!({"type": "NFC"}),
        ),
        "llama-bpe" | "llama3" | "smaug-bpe" => (
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level(false)]}),
            Value::Null,
        ),
        "default" | "gpt-2" | "gpt2" | "" => (byte_level(true), Value::Null),
        other => {
            return Err(tok_err(format!(
                "gguf pre-tokenizer {other:?} is not supported; expected smollm, qwen2, llama-bpe or gpt-2"
            )))
        }
    })
}

impl TextTokenizer {
    /// Wraps a built tokenizer with its special tokens and template.
    pub fn new(
        inner: tokenizers::Tokenizer,
        bos: Option<(String, u32)>,
        eos: Option<(String, u32)>,
        chat_template: Option<String>,
    ) -> Self {
        Self {
            inner,
            bos,
            eos,
            chat_template,
            add_bos: false,
        }
    }

    /// Rebuilds the byte-level BPE tokenizer embedded in a GGUF file.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for a missing key, a non-BPE tokenizer or an unknown pre-tokenizer.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let md = file.metadata();
        let path = file.path().display().to_string();
        let missing = |k: &str| tok_err(format!("{path}: missing metadata key {k}"));
        let model = file
            .metadata_str("tokenizer.ggml.model")
            .ok_or_else(|| missing("tokenizer.ggml.model"))?;
        if model != "gpt2" {
            return Err(tok_err(format!(
                "{path}: gguf tokenizer model {model:?} is not supported; expected gpt2 (byte-level BPE)"
            )));
        }
        let strings = |k: &str| -> Result<Vec<String>> {
            let v = md
                .get(k)
                .and_then(|v| v.to_vec().ok())
                .ok_or_else(|| missing(k))?;
            v.iter()
                .map(|x| x.to_string().cloned().map_err(|_| missing(k)))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<usize> = match md
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
        {
            Some(v) => v
                .iter()
                .map(|x| crate::config::gguf_usize(x).unwrap_or(1))
                .collect(),
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(tok_err(format!(
                "{path}: tokenizer.ggml.token_type has {} entries for {} tokens; the file is damaged",
                types.len(),
                tokens.len()
            )));
        }
        let pre = file.metadata_str("tokenizer.ggml.pre").unwrap_or("default");
        let (pre_tokenizer, normalizer) = pre_tokenizer_for(pre)?;
        let vocab: serde_json::Map<String, Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), json!(i)))
            .collect();
        // Type 3 = control, 4 = user-defined: matched whole in text.
        let added: Vec<Value> = types
            .iter()
            .enumerate()
            .filter(|(_, &t)| t == 3 || t == 4)
            .map(|(i, &t)| {
                json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": t == 3})
            })
            .collect();
        let merges: Vec<Value> = merges
            .iter()
            .map(|m| {
                let (a, b) = m.split_once(' ').unwrap_or((m.as_str(), ""));
                json!([a, b])
            })
            .collect();
        let spec = json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added,
            "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges}
        });
        let inner: tokenizers::Tokenizer = serde_json::from_value(spec)
            .map_err(|e| tok_err(format!("{path}: cannot build the bpe tokenizer: {e}")))?;
        let special = |k: &str| {
            md.get(k)
                .and_then(crate::config::gguf_usize)
                .and_then(|id| tokens.get(id).map(|t| (t.clone(), id as u32)))
        };
        Ok(Self {
            inner,
            bos: special("tokenizer.ggml.bos_token_id"),
            eos: special("tokenizer.ggml.eos_token_id"),
            chat_template: file
                .metadata_str("tokenizer.chat_template")
                .map(str::to_string),
            add_bos: md
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false),
        })
    }

    /// Loads `tokenizer.json` and, when present, `tokenizer_config.json` (bos/eos token, chat
    /// template) from a Hugging Face model directory.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Tokenizer`] naming the file.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let tj = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&tj)
            .map_err(|e| tok_err(format!("{}: {e}", tj.display())))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: Value = match std::fs::read_to_string(&cfg_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Json {
                path: cfg_path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
            Err(e) => return Err(Error::io(&cfg_path, e)),
        };
        let token_str = |k: &str| -> Option<String> {
            match cfg.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let with_id = |t: Option<String>| t.and_then(|t| inner.token_to_id(&t).map(|id| (t, id)));
        let chat_template = match cfg.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            // A list of named templates: take "default".
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
            None | Some(Value::Null) => None,
            // Falling back to another template would train on a format the model never saw.
            Some(other) => {
                return Err(Error::Json {
                    path: cfg_path.clone(),
                    message: format!(
                    "chat_template is {other}, not a template string or a list of named templates"
                ),
                })
            }
        };
        let chat_template =
            chat_template.or_else(|| std::fs::read_to_string(dir.join("chat_template.jinja")).ok());
        Ok(Self {
            bos: with_id(token_str("bos_token")),
            eos: with_id(token_str("eos_token")),
            inner: inner.clone(),
            chat_template,
            add_bos: cfg
                .get("add_bos_token")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// Token ids of `text`, with no BOS/EOS added; special tokens written in the text
    /// (`<|im_start|>`) map to their ids.
    ///
    /// # Errors
    /// [`Error::Tokenizer`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err(format!("encode: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of a whole document: BOS first when the model asks for it
    /// (`tokenizer.ggml.add_bos_token` / `add_bos_token`), then [`Self::encode`].
    ///
    /// # Errors
    /// [`Error::Tokenizer`].
    pub fn encode_document(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = match (&self.bos, self.add_bos) {
            (Some((_, id)), true) => vec![*id],
            _ => vec![],
        };
        ids.extend(self.encode(text)?);
        Ok(ids)
    }

    /// Text of `ids`; special tokens are kept unless `skip_special`.
    ///
    /// # Errors
    /// [`Error::Tokenizer`].
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| tok_err(format!("decode: {e}")))
    }

    /// The id of a token string (`<|im_end|>`), if in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Beginning-of-sequence token and id.
    pub fn bos(&self) -> Option<(&str, u32)> {
        self.bos.as_ref().map(|(s, i)| (s.as_str(), *i))
    }

    /// End-of-sequence token and id (TRL appends it to every answer).
    pub fn eos(&self) -> Option<(&str, u32)> {
        self.eos.as_ref().map(|(s, i)| (s.as_str(), *i))
    }

    /// The model's own chat template source (Jinja), if it ships one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Ids that end generation: EOS plus the usual end-of-turn tokens present in the vocabulary
    /// (`<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`, `<end_of_turn>`).
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.eos.iter().map(|(_, i)| *i).collect();
        for t in [
            "<|im_end|>",
            "<|eot_id|>",
            "<|endoftext|>",
            "<end_of_turn>",
            "<|end|>",
        ] {
            if let Some(id) = self.token_id(t) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::smollm2;

    #[test]
    fn smollm2_gguf_tokenizer_is_byte_level_bpe_with_special_tokens() {
        let (_, tok) = smollm2();
        assert_eq!(tok.vocab_size(), 49152);
        assert_eq!(tok.eos(), Some(("<|im_end|>", 2)));
        let ids = tok.encode("<|im_start|>user\nHello, world! 2024").unwrap();
        assert_eq!(ids[0], 1, "control tokens are matched whole");
        let pieces: Vec<String> = ids
            .iter()
            .map(|&i| tok.decode(&[i], false).unwrap())
            .collect();
        assert_eq!(
            pieces,
            [
                "<|im_start|>",
                "user",
                "\n",
                "Hello",
                ",",
                " world",
                "!",
                " ",
                "2",
                "0",
                "2",
                "4"
            ]
        );
        let text = "Ünïcode — ça marche?\n\n  indented\tTab";
        assert_eq!(tok.decode(&tok.encode(text).unwrap(), false).unwrap(), text);
        assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
        assert_eq!(tok.stop_ids(), vec![2, 0]);
    }
}

#[cfg(test)]
mod hf_dir_tests {
    use super::*;
    use crate::testing::smollm2;

    #[test]
    fn hf_directory_tokenizer_reads_tokenizer_config() {
        let (_, gguf_tok) = smollm2();
        let dir = std::env::temp_dir().join(format!("fedpref-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        gguf_tok
            .inner
            .save(dir.join("tokenizer.json"), false)
            .unwrap();
        let cfg = json!({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"},
                         "chat_template": gguf_tok.chat_template().unwrap()});
        std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
        let tok = TextTokenizer::from_hf_dir(&dir).unwrap();
        assert_eq!(tok.bos(), Some(("<|im_start|>", 1)));
        assert_eq!(tok.eos(), Some(("<|im_end|>", 2)));
        assert_eq!(tok.chat_template(), gguf_tok.chat_template());
        let text = "<|im_start|>user\nCount 12345 sheep, s'il vous plaît.<|im_end|>";
        assert_eq!(tok.encode(text).unwrap(), gguf_tok.encode(text).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

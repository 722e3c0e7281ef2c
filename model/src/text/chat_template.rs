//! Chat templates: the model's own Jinja template (`tokenizer.chat_template` in GGUF,
//! `chat_template` in `tokenizer_config.json`) rendered with minijinja the way Hugging Face's
//! `apply_chat_template` does (`trim_blocks`, `lstrip_blocks`, loop controls, Python string
//! methods via minijinja-contrib, `raise_exception`), or the built-in Alpaca template.
//!
//! Feeds prompt masking ([`crate::text::answer_mask`]) and generation prompts.

use minijinja::{context, Environment, ErrorKind};
use serde::Serialize;

use crate::{Error, Result};

/// One chat message (`role`: `system`, `user` or `assistant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Speaker.
    pub role: String,
    /// Text.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The built-in Alpaca template (instruction / response, with the usual preamble unless a
/// system message replaces it; EOS ends each response).
pub const ALPACA_TEMPLATE: &str = "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\n\n' }}{% set rest = messages[1:] %}{% else %}{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' }}{% set rest = messages %}{% endif %}{% for m in rest %}{% if m['role'] == 'user' %}{{ '### Instruction:\n' + m['content'] + '\n\n' }}{% elif m['role'] == 'assistant' %}{{ '### Response:\n' + m['content'] + eos_token + '\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}";

/// A parsed chat template with the special-token strings it may reference.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

/// Instructions one render may execute. A chat template comes with the model, from the
/// internet: one that loops without end (nested `range`s) runs out of fuel and fails instead of
/// hanging the host. Real templates use a few hundred per message, so a conversation of
/// thousands of messages fits. (minijinja bounds recursion and repeated strings itself; it has
/// no bound on a string grown by concatenation in a short loop.)
const FUEL: u64 = 5_000_000;

fn template_err(e: minijinja::Error) -> Error {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::ChatTemplate { message }
}

impl ChatTemplate {
    /// Parses `source` (Jinja). `bos_token` / `eos_token` are the strings the template sees.
    ///
    /// # Errors
    /// [`Error::ChatTemplate`] with minijinja's syntax error.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(template_err)?;
        Ok(Self {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The built-in Alpaca template.
    ///
    /// # Errors
    /// Never in practice (the template is a constant); kept for a uniform signature.
    pub fn alpaca(bos_token: &str, eos_token: &str) -> Result<Self> {
        Self::new(ALPACA_TEMPLATE, bos_token, eos_token)
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// answer begins.
    ///
    /// # Errors
    /// [`Error::ChatTemplate`] for render errors (including the template's `raise_exception`).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template("chat").map_err(template_err)?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(template_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_smollm2_template_like_transformers() {
        let t = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
        let m = [ChatMessage::new("user", "Hi")];
        assert_eq!(
            t.render(&m, true).unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        // Qwen-style templates call .strip() / .startswith(); some raise on bad roles.
        let src = "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}{{ raise_exception('bad role ' + m.role) }}{% endif %}{{ m.content.strip() }}{% if m.content.strip().startswith('a') %}!{% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        // trim_blocks (as in transformers) eats the newline after a block tag.
        assert_eq!(
            t.render(&[ChatMessage::new("user", "  abc ")], false)
                .unwrap(),
            "abc!"
        );
        let e = t
            .render(&[ChatMessage::new("tool", "x")], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad role tool"), "{e}");
    }

    #[test]
    fn alpaca_template() {
        let t = ChatTemplate::alpaca("<s>", "</s>").unwrap();
        let p = t
            .render(&[ChatMessage::new("user", "Add 2 and 2.")], true)
            .unwrap();
        assert!(p.starts_with("Below is an instruction"));
        assert!(
            p.ends_with("### Instruction:\nAdd 2 and 2.\n\n### Response:\n"),
            "{p:?}"
        );
        let full = t
            .render(
                &[
                    ChatMessage::new("user", "Add 2 and 2."),
                    ChatMessage::new("assistant", "4"),
                ],
                false,
            )
            .unwrap();
        assert_eq!(&full[p.len()..], "4</s>\n\n");
    }

    #[test]
    fn a_template_that_loops_without_end_runs_out_of_fuel() {
        let endless =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let t = ChatTemplate::new(endless, "", "").unwrap();
        let err = t
            .render(&[ChatMessage::new("user", "hi")], true)
            .unwrap_err();
        assert!(err.to_string().contains("fuel"), "{err}");
        // A long conversation under a real template stays far from the limit.
        let t = ChatTemplate::new(SMOLLM2, "", "").unwrap();
        let long: Vec<ChatMessage> = (0..2000)
            .map(|i| ChatMessage::new(if i % 2 == 0 { "user" } else { "assistant" }, "some words"))
            .collect();
        assert!(t.render(&long, true).is_ok());
    }
}

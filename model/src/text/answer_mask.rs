//! Tokenizing a (prompt, answer) pair with the prompt masked out, exactly as TRL's DPO trainer
//! does for decoder-only models:
//!
//! 1. `prompt = template(prompt_messages, add_generation_prompt=True)`,
//!    `full = template(prompt_messages + [assistant: answer])`;
//! 2. the prompt text is the longest common prefix of the two (TRL's guard against templates
//!    that render the generation prompt differently), the answer text is the rest of `full`;
//! 3. prompt and answer are tokenized separately without special tokens, and EOS is appended
//!    to the answer (no BOS is added: templates that want one write `bos_token` themselves).
//!
//! Feeds [`crate::logprobs::SequenceBatch`] (answer tokens are those whose log-prob counts).

use crate::logprobs::MaskedSequence;
use crate::text::chat_template::{ChatMessage, ChatTemplate};
use crate::text::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// Byte length of the longest common prefix of `a` and `b`, on a char boundary.
fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map_or(a.len().min(b.len()), |((i, _), _)| i)
}

/// Prompt and answer texts of a conversation as TRL splits them (steps 1-2 above).
///
/// # Errors
/// [`Error::ChatTemplate`] when the template fails.
pub fn split_chat(
    template: &ChatTemplate,
    prompt: &[ChatMessage],
    answer: &str,
) -> Result<(String, String)> {
    let prompt_text = template.render(prompt, true)?;
    let mut all = prompt.to_vec();
    all.push(ChatMessage::new("assistant", answer));
    let full = template.render(&all, false)?;
    let n = common_prefix_len(&prompt_text, &full);
    Ok((full[..n].to_string(), full[n..].to_string()))
}

/// Tokenizes `prompt` / `answer` texts separately and appends EOS to the answer; the mask marks
/// the answer tokens (EOS included).
///
/// # Errors
/// [`Error::Tokenizer`]; [`Error::ModelInput`] when the tokenizer has no EOS or the prompt is empty.
pub fn encode_texts(tok: &TextTokenizer, prompt: &str, answer: &str) -> Result<MaskedSequence> {
    let (_, eos) = tok.eos().ok_or_else(|| Error::ModelInput {
        message: "the tokenizer has no eos token to end the answer".into(),
    })?;
    let mut ids = tok.encode(prompt)?;
    if ids.is_empty() {
        return Err(Error::ModelInput {
            message: "the prompt encodes to no tokens".into(),
        });
    }
    let n_prompt = ids.len();
    ids.extend(tok.encode(answer)?);
    ids.push(eos);
    let answer_mask = (0..ids.len()).map(|i| i >= n_prompt).collect();
    Ok(MaskedSequence { ids, answer_mask })
}

/// A conversation's prompt messages and answer, templated, tokenized and masked as TRL does.
///
/// # Errors
/// Template or tokenizer errors.
pub fn encode_chat(
    tok: &TextTokenizer,
    template: &ChatTemplate,
    prompt: &[ChatMessage],
    answer: &str,
) -> Result<MaskedSequence> {
    let (p, a) = split_chat(template, prompt, answer)?;
    encode_texts(tok, &p, &a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_respects_char_boundaries() {
        assert_eq!(common_prefix_len("abé", "abè"), 2);
        assert_eq!(common_prefix_len("abc", "abcdef"), 3);
        assert_eq!(common_prefix_len("", "x"), 0);
    }

    #[test]
    fn split_chat_cuts_at_the_generation_prompt() {
        let t = ChatTemplate::new(
            "{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
            "",
            "</s>",
        )
        .unwrap();
        let (p, a) = split_chat(&t, &[ChatMessage::new("user", "q")], "ans").unwrap();
        assert_eq!(p, "<user>q</s><assistant>");
        assert_eq!(a, "ans</s>");
    }
}

#[cfg(test)]
mod smollm2_tests {
    use super::*;
    use crate::testing::smollm2;

    #[test]
    fn smollm2_answer_tokens_follow_the_generation_prompt_and_end_with_eos() {
        let (_, tok) = smollm2();
        let t =
            ChatTemplate::new(tok.chat_template().unwrap(), "<|im_start|>", "<|im_end|>").unwrap();
        let prompt = [ChatMessage::new("user", "What is the capital of France?")];
        let s = encode_chat(tok, &t, &prompt, "Paris.").unwrap();
        let n_prompt = s.answer_mask.iter().position(|&m| m).unwrap();
        assert!(s.answer_mask[n_prompt..].iter().all(|&m| m));
        let prompt_text = tok.decode(&s.ids[..n_prompt], false).unwrap();
        assert!(
            prompt_text.ends_with("<|im_start|>assistant\n"),
            "{prompt_text:?}"
        );
        // TRL: answer = rest of the templated conversation ("Paris.<|im_end|>\n") + EOS.
        assert_eq!(
            tok.decode(&s.ids[n_prompt..], false).unwrap(),
            "Paris.<|im_end|>\n<|im_end|>"
        );
        assert_eq!(*s.ids.last().unwrap(), 2);
    }
}

//! The library side of `fedpref logprobs`: per-token log-probs of one sequence under a model
//! (optionally with a PEFT adapter), as JSON `{"token_ids": [...], "logprobs": [...]}` where
//! `logprobs[i] = log p(token_ids[i + 1] | token_ids[..=i])` (nats).
//!
//! Inputs: raw text (tokenized as a document: BOS only if the model asks for it), a prompt and
//! answer (rendered with the model's chat template and tokenized as in training: TRL's split,
//! EOS after the answer), or token ids used exactly as given.

use std::path::Path;

use candle_core::{DType, Device};
use serde::Serialize;

use fedpref_model::{
    encode_chat, load_adapter, load_model_as, logprobs::token_logprobs, ChatMessage, Error, Result,
};

/// What to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogprobsInput {
    /// Plain text.
    Text(String),
    /// A user prompt and the assistant's answer, through the chat template.
    PromptAnswer {
        /// The user message.
        prompt: String,
        /// The answer.
        answer: String,
    },
    /// Token ids, used as given (no template, no BOS).
    Ids(Vec<u32>),
}

/// The command's output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogprobsOutput {
    /// The scored sequence.
    pub token_ids: Vec<u32>,
    /// `logprobs[i]` is the log-prob of `token_ids[i + 1]`; one shorter than `token_ids`.
    pub logprobs: Vec<f32>,
}

/// Loads `model` (GGUF file or Hugging Face directory), attaches the PEFT adapter in `adapter`
/// if given, and scores `input`.
///
/// # Errors
/// Loader, adapter, template or tokenizer errors naming their file; [`Error::ModelInput`] for
/// an empty sequence or ids outside the vocabulary.
pub fn compute_logprobs(
    model: &Path,
    adapter: Option<&Path>,
    input: &LogprobsInput,
    dtype: DType,
    device: &Device,
) -> Result<LogprobsOutput> {
    let mut loaded = load_model_as(model, dtype, device)?;
    if let Some(dir) = adapter {
        // The adapter stays f32 under a bf16 base, as in training.
        let ad = load_adapter(dir, loaded.decoder.config(), DType::F32, device)?;
        loaded.decoder.attach_adapter(ad)?;
    }
    let token_ids = match input {
        LogprobsInput::Text(text) => loaded.tokenizer.encode_document(text)?,
        LogprobsInput::PromptAnswer { prompt, answer } => {
            let template = loaded.chat_template()?;
            encode_chat(
                &loaded.tokenizer,
                &template,
                &[ChatMessage::new("user", prompt.as_str())],
                answer,
            )?
            .ids
        }
        LogprobsInput::Ids(ids) => ids.clone(),
    };
    if token_ids.is_empty() {
        return Err(Error::ModelInput {
            message: "the input encodes to no tokens".into(),
        });
    }
    let logprobs = token_logprobs(&loaded.decoder, &token_ids)?;
    Ok(LogprobsOutput {
        token_ids,
        logprobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedpref_model::testing::smollm2_path;

    #[test]
    fn ids_text_and_prompt_answer_modes_on_smollm2() {
        let path = smollm2_path();
        let fixture: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/reference/smollm2_logprobs.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let ids: Vec<u32> = serde_json::from_value(fixture["token_ids"].clone()).unwrap();
        let by_ids = compute_logprobs(
            &path,
            None,
            &LogprobsInput::Ids(ids.clone()),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(by_ids.token_ids, ids);
        assert_eq!(by_ids.logprobs.len(), ids.len() - 1);
        let text = fixture["text"].as_str().unwrap().to_string();
        let by_text = compute_logprobs(
            &path,
            None,
            &LogprobsInput::Text(text),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(by_text, by_ids, "SmolLM2 adds no BOS to documents");
        let pa = LogprobsInput::PromptAnswer {
            prompt: "Hi".into(),
            answer: "Hello!".into(),
        };
        let out = compute_logprobs(&path, None, &pa, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(*out.token_ids.last().unwrap(), 2, "EOS ends the answer");
        assert!(out.logprobs.iter().all(|l| *l <= 0.0 && l.is_finite()));
        let e = compute_logprobs(
            &path,
            None,
            &LogprobsInput::Ids(vec![1, 99999]),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("99999"), "{e}");
    }

    #[test]
    fn adapter_flag_applies_a_peft_adapter() {
        use candle_core::DType;
        use fedpref_model::layers::lora::{Adapter, LoraConfig};
        let path = smollm2_path();
        let (model, _) = fedpref_model::testing::smollm2();
        let lc = LoraConfig::new(4, 8.0, 0.0, &["q_proj", "v_proj"]).unwrap();
        let ad = Adapter::new(&lc, model.config(), 3, DType::F32, &Device::Cpu).unwrap();
        let flat: Vec<f32> = (0..ad.num_params())
            .map(|i| ((i % 97) as f32 - 48.0) * 2e-3)
            .collect();
        ad.unflatten(&flat).unwrap();
        let dir = std::env::temp_dir().join(format!("fedpref-cli-adapter-{}", std::process::id()));
        fedpref_model::io::peft::save_adapter(&ad, &dir, "SmolLM2-135M-Instruct").unwrap();
        let ids = LogprobsInput::Ids(vec![1, 4093, 198, 1780, 314, 260, 3575]);
        let base = compute_logprobs(&path, None, &ids, DType::F32, &Device::Cpu).unwrap();
        let tuned = compute_logprobs(&path, Some(&dir), &ids, DType::F32, &Device::Cpu).unwrap();
        let mut with = model.clone();
        with.attach_adapter(ad).unwrap();
        let want = token_logprobs(&with, &[1, 4093, 198, 1780, 314, 260, 3575]).unwrap();
        for (g, w) in tuned.logprobs.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        assert!(tuned
            .logprobs
            .iter()
            .zip(&base.logprobs)
            .any(|(a, b)| (a - b).abs() > 1e-3));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

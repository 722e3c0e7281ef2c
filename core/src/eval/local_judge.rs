//! The host services handed to scorers ([`HostServices`]): `generate` answers a chat with a
//! local model, the judge of a fully offline evaluation.
//!
//! The judge is the run's base model without the adapter (so verdicts do not drift as the
//! adapter trains), or `eval.judge_model`, loaded on the first call and kept.

use std::{cell::OnceCell, path::PathBuf};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RString},
};
use candle_core::Device;
use fedpref_plugin_api::{
    GenerationRequest, HostServices, HostServicesRef, HostServices_TO, PluginError,
};

use fedpref_model::{
    generate, load_model, ChatMessage, ChatTemplate, Decoder, GenerateConfig, LoadedModel,
    TextTokenizer,
};

/// A separately configured judge model, loaded on first use.
pub struct JudgeModel {
    path: PathBuf,
    loaded: OnceCell<std::result::Result<(LoadedModel, ChatTemplate), String>>,
}

impl JudgeModel {
    /// The model at `path`, not loaded yet.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            loaded: OnceCell::new(),
        }
    }

    fn get(&self) -> std::result::Result<(&Decoder, &TextTokenizer, &ChatTemplate), String> {
        let loaded = self.loaded.get_or_init(|| {
            let model = load_model(&self.path, &Device::Cpu)
                .map_err(|e| format!("eval.judge_model: {e}"))?;
            let template = model
                .chat_template()
                .map_err(|e| format!("eval.judge_model: {e}"))?;
            Ok((model, template))
        });
        match loaded {
            Ok((model, template)) => Ok((&model.decoder, &model.tokenizer, template)),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Who answers a scorer's `generate`.
pub enum LocalJudge<'a> {
    /// A model already in memory.
    Model {
        /// The decoder (no adapter).
        decoder: &'a Decoder,
        /// Its tokenizer.
        tokenizer: &'a TextTokenizer,
        /// Its chat template.
        template: &'a ChatTemplate,
    },
    /// `eval.judge_model`.
    Configured(&'a JudgeModel),
}

impl LocalJudge<'_> {
    /// The services object scorers receive.
    pub fn services(&self) -> HostServicesRef<'_> {
        HostServices_TO::from_ptr(self, TD_Opaque)
    }

    /// The judge's reply to `request`.
    ///
    /// # Errors
    /// A message naming what failed (template, tokenizer, model, or loading the judge model).
    pub fn reply(&self, request: &GenerationRequest) -> std::result::Result<String, String> {
        let (decoder, tokenizer, template) = match self {
            LocalJudge::Model {
                decoder,
                tokenizer,
                template,
            } => (*decoder, *tokenizer, *template),
            LocalJudge::Configured(model) => model.get()?,
        };
        let messages: Vec<ChatMessage> = request
            .messages
            .iter()
            .map(|m| ChatMessage::new(m.role.as_str(), m.content.as_str()))
            .collect();
        let text = template
            .render(&messages, true)
            .map_err(|e| e.to_string())?;
        let ids = tokenizer.encode(&text).map_err(|e| e.to_string())?;
        let cfg = GenerateConfig {
            max_new_tokens: request.max_new_tokens as usize,
            temperature: f64::from(request.temperature),
            top_p: f64::from(request.top_p).clamp(f64::MIN_POSITIVE, 1.0),
            seed: 0,
        };
        let out =
            generate(decoder, &ids, &cfg, &tokenizer.stop_ids()).map_err(|e| e.to_string())?;
        tokenizer
            .decode(&out, true)
            .map(|t| t.trim().to_owned())
            .map_err(|e| e.to_string())
    }
}

impl HostServices for LocalJudge<'_> {
    fn generate(&self, request: &GenerationRequest) -> RResult<RString, PluginError> {
        match self.reply(request) {
            Ok(text) => RResult::ROk(text.into()),
            Err(message) => RResult::RErr(PluginError::failed(format!("local judge: {message}"))),
        }
    }
}

//! The host services handed to scorers ([`HostServices`]): `generate` answers a chat with a
//! local model and `option_logprobs` reads the probabilities of a verdict's options, for the
//! judge of a fully offline evaluation.
//!
//! The judge is the run's base model without the adapter (so verdicts do not drift as the
//! adapter trains), or `eval.judge_model`, loaded on the first call and kept: a Hugging Face
//! directory, or a GGUF file of up to 8 GB dequantized, on the training decoder with a KV cache
//! (every core, see [`fits_in_f32`]); a larger GGUF file quantized ([`QuantizedModel`],
//! candle's k-quant kernels).

use std::{
    cell::{OnceCell, RefCell},
    path::{Path, PathBuf},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RString, RVec},
};
use candle_core::Device;
use fedpref_plugin_api::{
    GenerationRequest, HostServices, HostServicesRef, HostServices_TO, OptionsRequest, PluginError,
};

use fedpref_model::{
    generate, load_model, options, ChatMessage, ChatTemplate, Decoder, GenerateConfig, GgufFile,
    LoadedModel, QuantizedModel, TextTokenizer,
};

type Loaded = std::result::Result<JudgeWeights, String>;

/// A loaded `eval.judge_model`.
enum JudgeWeights {
    Quantized(RefCell<QuantizedModel>),
    Full(LoadedModel, ChatTemplate),
}

/// A separately configured judge model, loaded on first use.
pub struct JudgeModel {
    path: PathBuf,
    loaded: OnceCell<Loaded>,
}

impl JudgeModel {
    /// The model at `path`, not loaded yet.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            loaded: OnceCell::new(),
        }
    }

    fn get(&self) -> std::result::Result<&JudgeWeights, String> {
        let loaded = self.loaded.get_or_init(|| {
            let failed = |e: fedpref_model::Error| format!("eval.judge_model: {e}");
            let is_gguf = self.path.extension().is_some_and(|e| e == "gguf");
            if is_gguf && !fits_in_f32(&self.path).map_err(failed)? {
                let model = QuantizedModel::load(&self.path, &Device::Cpu).map_err(failed)?;
                return Ok(JudgeWeights::Quantized(RefCell::new(model)));
            }
            let model = load_model(&self.path, &Device::Cpu).map_err(failed)?;
            let template = model.chat_template().map_err(failed)?;
            Ok(JudgeWeights::Full(model, template))
        });
        loaded.as_ref().map_err(Clone::clone)
    }
}

/// The largest judge dequantized to f32 (weights times 4 bytes): past it a GGUF judge runs on
/// its quantized weights.
const MAX_F32_JUDGE_BYTES: usize = 8 << 30;

/// Whether the GGUF judge at `path` is small enough to run dequantized. On CPU that is several
/// times faster: candle's k-quant matrix products run on one thread and its quantized models
/// cannot step their KV cache back (each position of a line of scores reruns the prompt),
/// where the f32 decoder multiplies on every core and steps back
/// ([`fedpref_model::options::decoder_option_logprobs`]).
fn fits_in_f32(path: &Path) -> fedpref_model::Result<bool> {
    Ok(GgufFile::open(path)?.parameter_count() * 4 <= MAX_F32_JUDGE_BYTES)
}

/// Who answers a scorer's calls.
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

/// A decoder on the training code path with its text side.
struct FullModel<'a> {
    decoder: &'a Decoder,
    tokenizer: &'a TextTokenizer,
    template: &'a ChatTemplate,
}

type Outcome<T> = std::result::Result<T, String>;

impl LocalJudge<'_> {
    /// The services object scorers receive.
    pub fn services(&self) -> HostServicesRef<'_> {
        HostServices_TO::from_ptr(self, TD_Opaque)
    }

    /// Runs `full` on a decoder or `quantized` on a quantized judge.
    fn with_model<T>(
        &self,
        full: impl FnOnce(FullModel<'_>) -> Outcome<T>,
        quantized: impl FnOnce(&mut QuantizedModel) -> Outcome<T>,
    ) -> Outcome<T> {
        match self {
            LocalJudge::Model {
                decoder,
                tokenizer,
                template,
            } => full(FullModel {
                decoder,
                tokenizer,
                template,
            }),
            LocalJudge::Configured(model) => match model.get()? {
                JudgeWeights::Quantized(cell) => quantized(&mut cell.borrow_mut()),
                JudgeWeights::Full(loaded, template) => full(FullModel {
                    decoder: &loaded.decoder,
                    tokenizer: &loaded.tokenizer,
                    template,
                }),
            },
        }
    }

    /// The judge's reply to `request`.
    ///
    /// # Errors
    /// A message naming what failed (template, tokenizer, model, or loading the judge model).
    pub fn reply(&self, request: &GenerationRequest) -> Outcome<String> {
        let messages = chat(&request.messages);
        let cfg = GenerateConfig {
            max_new_tokens: request.max_new_tokens as usize,
            temperature: f64::from(request.temperature),
            top_p: f64::from(request.top_p).clamp(f64::MIN_POSITIVE, 1.0),
            seed: 0,
        };
        self.with_model(
            |m| {
                let ids = prompt_ids(m.template, m.tokenizer, &messages, "")?;
                let out = generate(m.decoder, &ids, &cfg, &m.tokenizer.stop_ids())
                    .map_err(|e| e.to_string())?;
                decode(m.tokenizer, &out)
            },
            |q| {
                let ids = prompt_ids(q.chat_template(), q.tokenizer(), &messages, "")?;
                let stop = q.tokenizer().stop_ids();
                let out = q.generate(&ids, &cfg, &stop).map_err(|e| e.to_string())?;
                decode(q.tokenizer(), &out)
            },
        )
    }

    /// `log P(option)` at each requested position (see [`OptionsRequest`]).
    ///
    /// # Errors
    /// As [`Self::reply`]; options that tokenize into branching paths.
    pub fn options(&self, request: &OptionsRequest) -> Outcome<Vec<f64>> {
        let messages = chat(&request.messages);
        let positions = request.positions as usize;
        let encode_all = |tokenizer: &TextTokenizer| -> Outcome<(Vec<Vec<u32>>, Vec<u32>)> {
            let options = request
                .options
                .iter()
                .map(|o| tokenizer.encode(o.as_str()).map_err(|e| e.to_string()))
                .collect::<Outcome<Vec<_>>>()?;
            let separator = tokenizer
                .encode(request.separator.as_str())
                .map_err(|e| e.to_string())?;
            Ok((options, separator))
        };
        self.with_model(
            |m| {
                let ids = prompt_ids(m.template, m.tokenizer, &messages, &request.reply_prefix)?;
                let (opts, sep) = encode_all(m.tokenizer)?;
                options::decoder_option_logprobs(m.decoder, &ids, &opts, positions, &sep)
                    .map_err(|e| e.to_string())
            },
            |q| {
                let prefix = &request.reply_prefix;
                let ids = prompt_ids(q.chat_template(), q.tokenizer(), &messages, prefix)?;
                let (opts, sep) = encode_all(q.tokenizer())?;
                q.option_logprobs(&ids, &opts, positions, &sep)
                    .map_err(|e| e.to_string())
            },
        )
    }
}

fn chat(messages: &[fedpref_plugin_api::ChatMessage]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|m| ChatMessage::new(m.role.as_str(), m.content.as_str()))
        .collect()
}

/// The reply's text, special tokens dropped and trimmed.
fn decode(tokenizer: &TextTokenizer, ids: &[u32]) -> Outcome<String> {
    tokenizer
        .decode(ids, true)
        .map(|t| t.trim().to_owned())
        .map_err(|e| e.to_string())
}

/// The rendered conversation with its generation prompt, then `reply_prefix`, as ids.
fn prompt_ids(
    template: &ChatTemplate,
    tokenizer: &TextTokenizer,
    messages: &[ChatMessage],
    reply_prefix: &str,
) -> Outcome<Vec<u32>> {
    let text = template.render(messages, true).map_err(|e| e.to_string())?;
    tokenizer
        .encode(&format!("{text}{reply_prefix}"))
        .map_err(|e| e.to_string())
}

fn plugin_result<T, U>(result: Outcome<T>, map: impl FnOnce(T) -> U) -> RResult<U, PluginError> {
    match result {
        Ok(value) => RResult::ROk(map(value)),
        Err(message) => RResult::RErr(PluginError::failed(format!("local judge: {message}"))),
    }
}

impl HostServices for LocalJudge<'_> {
    fn generate(&self, request: &GenerationRequest) -> RResult<RString, PluginError> {
        plugin_result(self.reply(request), RString::from)
    }

    fn option_logprobs(&self, request: &OptionsRequest) -> RResult<RVec<f64>, PluginError> {
        plugin_result(self.options(request), RVec::from)
    }
}

//! One entry point for a model path ([`load_model`]): a `.gguf` file or a Hugging Face
//! directory, the format and architecture read from the files, never chosen by the user.
//!
//! Returns the decoder, its tokenizer and its chat template (the model's own, or the built-in
//! Alpaca template when the model ships none).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use crate::io::gguf::GgufFile;
use crate::io::hf;
use crate::layers::decoder::Decoder;
use crate::text::chat_template::ChatTemplate;
use crate::text::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// A loaded model with everything needed to turn text into log-probs.
#[derive(Debug)]
pub struct LoadedModel {
    /// The decoder (no adapter attached).
    pub decoder: Decoder,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// Where it came from.
    pub source: PathBuf,
}

impl LoadedModel {
    /// The model's chat template, or Alpaca when it has none.
    ///
    /// # Errors
    /// [`Error::ChatTemplate`] when the model's template does not parse.
    pub fn chat_template(&self) -> Result<ChatTemplate> {
        let bos = self.tokenizer.bos().map_or("", |b| b.0);
        let eos = self.tokenizer.eos().map_or("", |e| e.0);
        match self.tokenizer.chat_template() {
            Some(src) => ChatTemplate::new(src, bos, eos),
            None => ChatTemplate::alpaca(bos, eos),
        }
    }
}

/// True when `path` starts with the GGUF magic.
fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF"
}

/// Loads a `.gguf` file or a Hugging Face model directory, weights in f32 on `device`.
///
/// # Errors
/// [`Error::ModelFormat`] for a path that is neither; loader errors naming the file.
pub fn load_model(path: &Path, device: &Device) -> Result<LoadedModel> {
    load_model_as(path, DType::F32, device)
}

/// [`load_model`] with the frozen weights in `dtype` (f32, or bf16 for mixed precision).
///
/// # Errors
/// As [`load_model`].
pub fn load_model_as(path: &Path, dtype: DType, device: &Device) -> Result<LoadedModel> {
    let (decoder, tokenizer) = if path.is_dir() {
        (
            hf::load_decoder(path, dtype, device)?,
            TextTokenizer::from_hf_dir(path)?,
        )
    } else if is_gguf(path) {
        let file = GgufFile::open(path)?;
        (
            file.decoder(dtype, device)?,
            TextTokenizer::from_gguf(&file)?,
        )
    } else {
        return Err(Error::ModelFormat {
            path: path.to_path_buf(),
            message: "not a gguf file nor a hugging face model directory".into(),
        });
    };
    Ok(LoadedModel {
        decoder,
        tokenizer,
        source: path.to_path_buf(),
    })
}

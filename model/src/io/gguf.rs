//! GGUF loader: reads a llama.cpp model file with candle's `gguf_file`, dequantizes every tensor
//! to f32 (any type candle's `QTensor::dequantize` knows: F32, F16, Q4_0, Q4_1, Q5_0, Q8_0,
//! Q4_K, Q5_K, Q6_K, ...) and renames it to its Hugging Face name, so [`Decoder::load`] serves
//! both formats.
//!
//! llama.cpp's converter permutes the q/k rows of llama models (each head's rows go from the
//! half layout `[x_0..x_{d/2}, y_0..y_{d/2}]` to interleaved pairs) so that its interleaved RoPE
//! applies. [`unpermute_rows`] undoes that here, so the decoder runs the Hugging Face layout
//! with half RoPE and LoRA adapters stay interchangeable with PEFT's. qwen2 files are not
//! permuted (llama.cpp uses NeoX RoPE for them).
//!
//! Fed by a path; feeds [`Decoder`], [`ModelConfig`] and the tokenizer metadata
//! ([`GgufFile::metadata`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::{Architecture, ModelConfig};
use crate::layers::decoder::Decoder;
use crate::{Error, Result};

/// An open GGUF file: its metadata and tensor directory (tensor data is read on demand).
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    content: gguf_file::Content,
}

/// Reorders the rows of a llama.cpp-permuted q/k weight `(heads * d, ...)` (or bias `(heads * d,)`)
/// back to the Hugging Face layout: per head, view the rows as `(d/2, 2)` and transpose to `(2, d/2)`.
///
/// # Errors
/// Rows not divisible into `heads` heads of even width.
pub fn unpermute_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rest: usize = dims[1..].iter().product();
    let d = dims[0] / heads;
    Ok(w.reshape((heads, d / 2, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// The permutation llama.cpp's converter applies (`(heads, 2, d/2)` -> `(heads, d/2, 2)` per
/// row block); the inverse of [`unpermute_rows`].
///
/// # Errors
/// Rows not divisible into `heads` heads of even width.
pub fn permute_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rest: usize = dims[1..].iter().product();
    let d = dims[0] / heads;
    Ok(w.reshape((heads, 2, d / 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// The header, metadata and tensor directory of a GGUF file, checked: candle's reader divides
/// by the file's `general.alignment` (a panic on 0), so a panic while reading is caught and
/// reported as a damaged file; every tensor must have a size, and its bytes must lie inside
/// the file (dimensions whose product overflows would otherwise wrap to a small read and then
/// ask dequantization for an impossible allocation).
///
/// # Errors
/// [`Error::ModelFormat`] naming the file.
pub fn read_content<R: std::io::Read + std::io::Seek>(
    reader: &mut R,
    path: &Path,
) -> Result<gguf_file::Content> {
    let bad = |message: String| Error::ModelFormat {
        path: path.to_path_buf(),
        message,
    };
    let content = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gguf_file::Content::read(reader)
    }))
    .map_err(|_| {
        bad("the gguf header is malformed (e.g. general.alignment = 0); the file is damaged".into())
    })?
    .map_err(|e| bad(format!("not a readable gguf file: {e}")))?;
    if let Some((name, _)) = content
        .tensor_infos
        .iter()
        .find(|(_, t)| t.shape.dims().contains(&0))
    {
        return Err(bad(format!(
            "tensor {name} has a zero-sized dimension; the file is damaged"
        )));
    }
    let file_len = reader
        .seek(std::io::SeekFrom::End(0))
        .map_err(|e| Error::io(path, e))?;
    for (name, info) in &content.tensor_infos {
        let end = tensor_end(info, content.tensor_data_offset);
        if end.is_none_or(|end| end > file_len) {
            return Err(bad(format!(
                "tensor {name} ({:?} {:?}) does not fit in the file's {file_len} bytes; the file is damaged or cut short",
                info.ggml_dtype,
                info.shape.dims()
            )));
        }
    }
    Ok(content)
}

/// The byte just past a tensor's data, `None` when its size overflows or its element count is
/// not a whole number of its type's blocks.
fn tensor_end(info: &gguf_file::TensorInfo, data_offset: u64) -> Option<u64> {
    let elements = info
        .shape
        .dims()
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
    let block = info.ggml_dtype.block_size() as u64;
    if elements % block != 0 {
        return None;
    }
    let bytes = (elements / block).checked_mul(info.ggml_dtype.type_size() as u64)?;
    data_offset.checked_add(info.offset)?.checked_add(bytes)
}

/// The Hugging Face name of a GGUF tensor, or `None` for tensors the decoder does not use.
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let fixed = match gguf_name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

impl GgufFile {
    /// Reads the header, metadata and tensor directory of `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened, [`Error::ModelFormat`] when it is not GGUF.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut reader = BufReader::new(File::open(&path).map_err(|e| Error::io(&path, e))?);
        let content = read_content(&mut reader, &path)?;
        Ok(Self { path, content })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of weights its tensors hold (what dequantizing them costs, times 4 bytes).
    pub fn parameter_count(&self) -> usize {
        self.content
            .tensor_infos
            .values()
            .map(|t| t.shape.elem_count())
            .sum()
    }

    /// All metadata key/values (`general.*`, `{arch}.*`, `tokenizer.*`).
    pub fn metadata(&self) -> &HashMap<String, gguf_file::Value> {
        &self.content.metadata
    }

    /// A string metadata value.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.content
            .metadata
            .get(key)
            .and_then(|v| v.to_string().ok())
            .map(|s| s.as_str())
    }

    /// The hyper-parameters.
    ///
    /// # Errors
    /// As [`ModelConfig::from_gguf`].
    pub fn config(&self) -> Result<ModelConfig> {
        ModelConfig::from_gguf(&self.content, &self.path)
    }

    /// Every tensor the decoder uses, dequantized to `dtype`, under its Hugging Face name; llama
    /// q/k rows un-permuted.
    ///
    /// # Errors
    /// I/O or dequantization failures, naming the tensor.
    pub fn tensors(
        &self,
        cfg: &ModelConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<HashMap<String, Tensor>> {
        let mut reader =
            BufReader::new(File::open(&self.path).map_err(|e| Error::io(&self.path, e))?);
        let mut out = HashMap::new();
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        for name in names {
            let Some(hf) = hf_name(name) else { continue };
            let bad = |e: candle_core::Error| Error::ModelFormat {
                path: self.path.clone(),
                message: format!("tensor {name}: {e}"),
            };
            let q = self
                .content
                .tensor(&mut reader, name, &Device::Cpu)
                .map_err(bad)?;
            let mut t = q.dequantize(&Device::Cpu).map_err(bad)?;
            if cfg.architecture == Architecture::Llama {
                if hf.contains(".self_attn.q_proj.") {
                    t = unpermute_rows(&t, cfg.num_attention_heads)?;
                } else if hf.contains(".self_attn.k_proj.") {
                    t = unpermute_rows(&t, cfg.num_key_value_heads)?;
                }
            }
            out.insert(hf, t.to_dtype(dtype)?.to_device(device)?);
        }
        Ok(out)
    }

    /// Loads the decoder (f32 by default) from this file.
    ///
    /// # Errors
    /// Bad metadata, a missing tensor (named) or a dequantization failure.
    pub fn decoder(&self, dtype: DType, device: &Device) -> Result<Decoder> {
        let cfg = self.config()?;
        let tensors = self.tensors(&cfg, dtype, device)?;
        let vb = VarBuilder::from_tensors(tensors, dtype, device);
        Decoder::load(vb, &cfg).map_err(|e| Error::ModelFormat {
            path: self.path.clone(),
            message: format!("{e} (tensor names are the hugging face ones mapped from gguf)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QTensor};

    use super::*;
    use crate::layers::rope::RopeStyle;
    use crate::testing::{max_diff, random_weights, tiny_config, write_tiny_gguf};

    #[test]
    fn permutation_round_trips_and_interleaved_rope_undoes_it() {
        let cfg = tiny_config();
        let w = random_weights(&cfg, 11, DType::F32);
        let q = &w["model.layers.0.self_attn.q_proj.weight"];
        let p = permute_rows(q, cfg.num_attention_heads).unwrap();
        assert!(max_diff(&p, q) > 0.0);
        assert_eq!(
            max_diff(&unpermute_rows(&p, cfg.num_attention_heads).unwrap(), q),
            0.0
        );
        // The raw GGUF layout (permuted q/k) with interleaved RoPE == HF layout with half RoPE.
        let mut permuted = w.clone();
        for l in 0..cfg.num_hidden_layers {
            let qn = format!("model.layers.{l}.self_attn.q_proj.weight");
            let kn = format!("model.layers.{l}.self_attn.k_proj.weight");
            permuted.insert(
                qn.clone(),
                permute_rows(&w[&qn], cfg.num_attention_heads).unwrap(),
            );
            permuted.insert(
                kn.clone(),
                permute_rows(&w[&kn], cfg.num_key_value_heads).unwrap(),
            );
        }
        let ids = Tensor::new(&[[1u32, 4, 9, 16, 25, 3]], &Device::Cpu).unwrap();
        let hf =
            Decoder::load(VarBuilder::from_tensors(w, DType::F32, &Device::Cpu), &cfg).unwrap();
        let raw = Decoder::load_with_rope(
            VarBuilder::from_tensors(permuted.clone(), DType::F32, &Device::Cpu),
            &cfg,
            RopeStyle::Interleaved,
        )
        .unwrap();
        let wrong = Decoder::load(
            VarBuilder::from_tensors(permuted, DType::F32, &Device::Cpu),
            &cfg,
        )
        .unwrap();
        let a = hf.logits(&ids).unwrap();
        assert!(max_diff(&a, &raw.logits(&ids).unwrap()) < 1e-4);
        assert!(
            max_diff(&a, &wrong.logits(&ids).unwrap()) > 1e-3,
            "the permutation must matter"
        );
    }

    #[test]
    fn loads_a_written_gguf_file_like_llama_cpp_lays_it_out() {
        let mut cfg = tiny_config();
        (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim) = (32, 64, 8);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        // q/k permuted as llama.cpp writes them, the MLP in Q8_0 to exercise dequantization.
        let w = write_tiny_gguf(&path, &cfg, 12, true).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let got_cfg = file.config().unwrap();
        assert_eq!(got_cfg.head_dim, cfg.head_dim);
        assert_eq!(got_cfg.vocab_size, cfg.vocab_size);
        assert!(!got_cfg.tie_word_embeddings && !got_cfg.qkv_bias);
        let ours = file.decoder(DType::F32, &Device::Cpu).unwrap();
        let hf =
            Decoder::load(VarBuilder::from_tensors(w, DType::F32, &Device::Cpu), &cfg).unwrap();
        let ids = Tensor::new(&[[1u32, 4, 9, 16, 25, 3]], &Device::Cpu).unwrap();
        let d = max_diff(&hf.logits(&ids).unwrap(), &ours.logits(&ids).unwrap());
        assert!(d < 1e-4, "max |diff| {d}");
    }

    /// A copy of the GGUF `src` at `dst` with its metadata changed by `change`.
    fn rewritten(
        src: &Path,
        dst: &Path,
        change: impl FnOnce(&mut HashMap<String, gguf_file::Value>),
    ) -> PathBuf {
        let mut reader = File::open(src).unwrap();
        let content = gguf_file::Content::read(&mut reader).unwrap();
        let mut metadata = content.metadata.clone();
        change(&mut metadata);
        let tensors: Vec<(String, candle_core::quantized::QTensor)> = content
            .tensor_infos
            .keys()
            .map(|n| {
                (
                    n.clone(),
                    content.tensor(&mut reader, n, &Device::Cpu).unwrap(),
                )
            })
            .collect();
        let md: Vec<(&str, &gguf_file::Value)> =
            metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &candle_core::quantized::QTensor)> =
            tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        gguf_file::write(&mut File::create(dst).unwrap(), &md, &ts).unwrap();
        dst.to_path_buf()
    }

    #[test]
    fn hostile_headers_are_located_errors_not_aborts() {
        use gguf_file::Value as V;
        let mut cfg = tiny_config();
        (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim) = (32, 64, 8);
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.gguf");
        write_tiny_gguf(&good, &cfg, 3, false).unwrap();

        let zero_alignment = rewritten(&good, &dir.path().join("a.gguf"), |md| {
            md.insert("general.alignment".into(), V::U32(0));
        });
        let err = GgufFile::open(&zero_alignment).err().unwrap().to_string();
        assert!(err.contains("a.gguf") && err.contains("malformed"), "{err}");

        let huge_context = rewritten(&good, &dir.path().join("c.gguf"), |md| {
            md.insert("llama.context_length".into(), V::U64(1 << 40));
        });
        let err = GgufFile::open(&huge_context)
            .unwrap()
            .config()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_position_embeddings") && err.contains("c.gguf"),
            "{err}"
        );

        let long_types = rewritten(&good, &dir.path().join("t.gguf"), |md| {
            let n = cfg.vocab_size + 5;
            md.insert(
                "tokenizer.ggml.token_type".into(),
                V::Array((0..n).map(|_| V::I32(1)).collect()),
            );
        });
        let file = GgufFile::open(&long_types).unwrap();
        let err = crate::TextTokenizer::from_gguf(&file)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("token_type has"), "{err}");

        // Cut short: the last tensor's bytes are missing.
        let bytes = std::fs::read(&good).unwrap();
        let short = dir.path().join("s.gguf");
        std::fs::write(&short, &bytes[..bytes.len() - 64]).unwrap();
        let err = GgufFile::open(&short).err().unwrap().to_string();
        assert!(
            err.contains("s.gguf") && err.contains("does not fit"),
            "{err}"
        );
        // Dimensions whose product overflows, or that are not whole blocks.
        let info = |dtype, dims: &[usize]| gguf_file::TensorInfo {
            ggml_dtype: dtype,
            shape: dims.into(),
            offset: 0,
        };
        assert_eq!(
            tensor_end(&info(GgmlDType::F32, &[usize::MAX / 2, 4]), 0),
            None
        );
        assert_eq!(tensor_end(&info(GgmlDType::Q8_0, &[31]), 0), None);
        assert_eq!(
            tensor_end(&info(GgmlDType::Q8_0, &[64]), 100),
            Some(100 + 2 * 34)
        );
    }

    #[test]
    fn dequantizes_the_quant_types_of_smollm2_and_qwen_files() {
        // SmolLM2: Q4_1, Q8_0; Qwen2.5 Q4_K_M: Q4_K, Q5_0, Q6_K (plus F16 / F32 norms).
        let mut cfg = tiny_config();
        cfg.architecture = Architecture::Qwen2;
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (4, 256), &dev).unwrap();
        for dtype in [
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q5_0,
            GgmlDType::Q6K,
            GgmlDType::F16,
        ] {
            let q = QTensor::quantize(&x, dtype).unwrap();
            let dir =
                std::env::temp_dir().join(format!("fedpref-q-{}-{dtype:?}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("q.gguf");
            let md = [(
                "general.architecture",
                gguf_file::Value::String("qwen2".into()),
            )];
            let md: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
            gguf_file::write(
                &mut File::create(&path).unwrap(),
                &md,
                &[("token_embd.weight", &q)],
            )
            .unwrap();
            let t = GgufFile::open(&path)
                .unwrap()
                .tensors(&cfg, DType::F32, &dev)
                .unwrap();
            let got = &t["model.embed_tokens.weight"];
            assert_eq!(got.dims(), &[4, 256], "{dtype:?}");
            // Within quantization error of the original (4-bit types are the coarsest).
            let err = max_diff(got, &x);
            assert!(err < 0.5, "{dtype:?}: {err}");
            assert_eq!(
                max_diff(got, &q.dequantize(&dev).unwrap()),
                0.0,
                "{dtype:?}"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

//! Hugging Face model directory loader: `config.json`, `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, `tokenizer.json`, `tokenizer_config.json`.
//!
//! Tensors are converted to the requested dtype (f32 by default; bf16/f16 checkpoints upcast).
//! Feeds [`Decoder::load`] through a VarBuilder over the Hugging Face names.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::ModelConfig;
use crate::layers::decoder::Decoder;
use crate::{Error, Result};

/// Reads and validates `dir/config.json`.
///
/// # Errors
/// [`Error::Io`], [`Error::Json`], [`Error::UnsupportedArchitecture`].
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    ModelConfig::from_hf_json(&text, &path)
}

/// The safetensors files of a model directory: `model.safetensors`, or every shard named in
/// `model.safetensors.index.json`'s `weight_map`.
///
/// # Errors
/// [`Error::ModelFormat`] when neither exists; [`Error::Json`] for a malformed index.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).map_err(|_| Error::ModelFormat {
        path: dir.to_path_buf(),
        message: "no model.safetensors nor model.safetensors.index.json".into(),
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: index.clone(),
        message: e.to_string(),
    })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::ModelFormat {
            path: index.clone(),
            message: "missing key weight_map".into(),
        })?;
    let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    files
        .into_iter()
        .map(|name| shard_path(dir, &index, name))
        .collect()
}

/// The shard `name` of the index, refused unless it is a plain file name inside the model
/// folder: an index from elsewhere must not point at `..`, an absolute path or a device.
fn shard_path(dir: &Path, index: &Path, name: &str) -> Result<PathBuf> {
    let refused = |why: &str| {
        Error::ModelFormat {
        path: index.to_path_buf(),
        message: format!("weight_map names the shard {name:?}, which {why}; shards must be files beside the index"),
    }
    };
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(_)), None) => {}
        _ => return Err(refused("is not a plain file name in the model folder")),
    }
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_file() => Ok(path),
        Ok(_) => Err(refused("is not a regular file")),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Every tensor of the directory's safetensors files, converted to `dtype`.
///
/// # Errors
/// I/O or format errors naming the file.
pub fn read_tensors(dir: &Path, dtype: DType, device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for file in safetensors_files(dir)? {
        let tensors =
            candle_core::safetensors::load(&file, device).map_err(|e| Error::ModelFormat {
                path: file.clone(),
                message: format!("cannot read safetensors: {e}"),
            })?;
        for (name, t) in tensors {
            out.insert(name, t.to_dtype(dtype)?);
        }
    }
    Ok(out)
}

/// Loads the decoder of a Hugging Face model directory.
///
/// # Errors
/// Config, file or tensor errors naming the path.
pub fn load_decoder(dir: &Path, dtype: DType, device: &Device) -> Result<Decoder> {
    let cfg = read_config(dir)?;
    let tensors = read_tensors(dir, dtype, device)?;
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    Decoder::load(vb, &cfg).map_err(|e| Error::ModelFormat {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{max_diff, random_weights, tiny_config};

    #[test]
    fn an_index_may_name_only_files_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("ok.safetensors"), b"x").unwrap();
        for (shard, why) in [
            ("../outside.safetensors", "plain file name"),
            ("/dev/zero", "plain file name"),
            ("sub/inner.safetensors", "plain file name"),
            ("sub", "regular file"),
        ] {
            std::fs::write(
                dir.path().join("model.safetensors.index.json"),
                serde_json::json!({"weight_map": {"a": "ok.safetensors", "b": shard}}).to_string(),
            )
            .unwrap();
            let err = safetensors_files(dir.path()).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(shard), "{shard}: {err}");
        }
    }

    #[test]
    fn loads_a_sharded_directory_like_the_in_memory_model() {
        let mut cfg = tiny_config();
        cfg.tie_word_embeddings = true;
        let w = random_weights(&cfg, 21, DType::F32);
        let dir = std::env::temp_dir().join(format!("fedpref-hf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Two shards in bf16 plus an index, as transformers writes large checkpoints.
        let (mut s1, mut s2) = (HashMap::new(), HashMap::new());
        let mut map = serde_json::Map::new();
        for (i, (name, t)) in w.iter().enumerate() {
            let (shard, file) = if i % 2 == 0 {
                (&mut s1, "model-00001-of-00002.safetensors")
            } else {
                (&mut s2, "model-00002-of-00002.safetensors")
            };
            shard.insert(name.clone(), t.to_dtype(DType::BF16).unwrap());
            map.insert(name.clone(), serde_json::json!(file));
        }
        candle_core::safetensors::save(&s1, dir.join("model-00001-of-00002.safetensors")).unwrap();
        candle_core::safetensors::save(&s2, dir.join("model-00002-of-00002.safetensors")).unwrap();
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            serde_json::json!({"weight_map": map}).to_string(),
        )
        .unwrap();
        let config = serde_json::json!({
            "model_type": "llama", "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads,
            "rms_norm_eps": cfg.rms_norm_eps, "rope_theta": cfg.rope_theta,
            "max_position_embeddings": cfg.max_position_embeddings, "tie_word_embeddings": true,
            "torch_dtype": "bfloat16"});
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let got = load_decoder(&dir, DType::F32, &Device::Cpu).unwrap();
        let rounded: HashMap<String, Tensor> = w
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.to_dtype(DType::BF16)
                        .unwrap()
                        .to_dtype(DType::F32)
                        .unwrap(),
                )
            })
            .collect();
        let want = Decoder::load(
            VarBuilder::from_tensors(rounded, DType::F32, &Device::Cpu),
            &cfg,
        )
        .unwrap();
        let ids = Tensor::new(&[[3u32, 1, 4, 1, 5, 9, 2, 6]], &Device::Cpu).unwrap();
        let d = max_diff(&got.logits(&ids).unwrap(), &want.logits(&ids).unwrap());
        assert_eq!(d, 0.0);
        std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
        let e = load_decoder(&dir, DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! LoRA adapters on disk in Hugging Face PEFT's layout: a directory with `adapter_config.json`
//! (`peft_type: LORA`, `r`, `lora_alpha`, `lora_dropout`, `target_modules`, ...) and
//! `adapter_model.safetensors` with tensors named
//! `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight`
//! (`A` `(r, in)`, `B` `(out, r)`, f32).
//!
//! Adapters trained here load in PEFT and the other way round (the GGUF loader keeps q/k in
//! the Hugging Face layout for this). Saving is deterministic: the same adapter gives the same
//! bytes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use serde_json::json;

use crate::config::ModelConfig;
use crate::layers::lora::{Adapter, LoraConfig, LoraPair, TargetModule};
use crate::{Error, Result};

/// PEFT's tensor name of one LoRA matrix (`which` is `"A"` or `"B"`).
pub fn tensor_name(layer: usize, module: TargetModule, which: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{}.lora_{which}.weight",
        module.parent(),
        module.name()
    )
}

fn adapter_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Adapter {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `adapter` to `dir` (created if missing) as PEFT does. `base_model` is recorded as
/// `base_model_name_or_path`.
///
/// # Errors
/// [`Error::Io`] or [`Error::Adapter`] naming the file.
pub fn save_adapter(adapter: &Adapter, dir: &Path, base_model: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let c = adapter.config();
    let targets: Vec<&str> = c.target_modules.iter().map(|m| m.name()).collect();
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": c.rank,
        "lora_alpha": c.alpha,
        "lora_dropout": c.dropout,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_rslora": false,
        "use_dora": false,
    });
    let cfg_path = dir.join("adapter_config.json");
    let text =
        serde_json::to_string_pretty(&config).map_err(|e| adapter_err(&cfg_path, e.to_string()))?;
    std::fs::write(&cfg_path, text + "\n").map_err(|e| Error::io(&cfg_path, e))?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for p in adapter.pairs() {
        tensors.push((
            tensor_name(p.layer, p.module, "A"),
            p.a.as_tensor().to_dtype(DType::F32)?.contiguous()?,
        ));
        tensors.push((
            tensor_name(p.layer, p.module, "B"),
            p.b.as_tensor().to_dtype(DType::F32)?.contiguous()?,
        ));
    }
    let st_path = dir.join("adapter_model.safetensors");
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(metadata),
        &st_path,
    )
    .map_err(|e| adapter_err(&st_path, e.to_string()))?;
    Ok(())
}

/// Reads a PEFT LoRA adapter for a model of config `model`, as vars of `dtype` on `device`.
///
/// # Errors
/// [`Error::Adapter`] for a non-LoRA config, an unknown target module, a missing tensor or a
/// shape that does not fit the model (all named).
pub fn load_adapter(
    dir: &Path,
    model: &ModelConfig,
    dtype: DType,
    device: &Device,
) -> Result<Adapter> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: cfg_path.clone(),
        message: e.to_string(),
    })?;
    let peft_type = raw
        .get("peft_type")
        .and_then(|v| v.as_str())
        .unwrap_or("LORA");
    if peft_type != "LORA" {
        return Err(adapter_err(
            &cfg_path,
            format!("peft_type {peft_type:?} is not supported; expected LORA"),
        ));
    }
    for unsupported in ["use_dora", "use_rslora"] {
        if raw.get(unsupported).and_then(|v| v.as_bool()) == Some(true) {
            return Err(adapter_err(
                &cfg_path,
                format!("{unsupported} adapters are not supported"),
            ));
        }
    }
    let rank = raw
        .get("r")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| adapter_err(&cfg_path, "missing key r"))?;
    let alpha = raw
        .get("lora_alpha")
        .and_then(|v| v.as_f64())
        .unwrap_or(8.0);
    let dropout = raw
        .get("lora_dropout")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let targets: Vec<String> = match raw.get("target_modules") {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => return Err(adapter_err(&cfg_path, "missing key target_modules")),
    };
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    let config = LoraConfig::new(rank as usize, alpha, dropout, &targets)
        .map_err(|e| adapter_err(&cfg_path, e.to_string()))?;
    let st_path = dir.join("adapter_model.safetensors");
    let tensors = candle_core::safetensors::load(&st_path, device)
        .map_err(|e| adapter_err(&st_path, format!("cannot read safetensors: {e}")))?;
    let mut pairs = Vec::new();
    for layer in 0..model.num_hidden_layers {
        for &module in &config.target_modules {
            let get = |which: &str| -> Result<Var> {
                let name = tensor_name(layer, module, which);
                // PEFT may or may not keep the adapter name ("default") in saved keys.
                let alt = name.replace(
                    &format!("lora_{which}.weight"),
                    &format!("lora_{which}.default.weight"),
                );
                let t = tensors
                    .get(&name)
                    .or_else(|| tensors.get(&alt))
                    .ok_or_else(|| adapter_err(&st_path, format!("missing tensor {name}")))?;
                Ok(Var::from_tensor(&t.to_dtype(dtype)?)?)
            };
            pairs.push(LoraPair {
                layer,
                module,
                a: get("A")?,
                b: get("B")?,
            });
        }
    }
    Adapter::from_pairs(config, model, pairs).map_err(|e| match e {
        Error::Adapter { message, .. } => adapter_err(&st_path, message),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tiny_config;

    #[test]
    fn save_load_round_trip_is_bit_identical() {
        let cfg = tiny_config();
        let lc = LoraConfig::new(3, 6.0, 0.05, &["q_proj", "v_proj", "down_proj"]).unwrap();
        let ad = Adapter::new(&lc, &cfg, 9, DType::F32, &Device::Cpu).unwrap();
        let flat: Vec<f32> = (0..ad.num_params())
            .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5)
            .collect();
        ad.unflatten(&flat).unwrap();
        let dir = std::env::temp_dir().join(format!("fedpref-peft-{}", std::process::id()));
        let (d1, d2) = (dir.join("one"), dir.join("two"));
        save_adapter(&ad, &d1, "tiny").unwrap();
        let back = load_adapter(&d1, &cfg, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(back.config(), ad.config());
        let a: Vec<u32> = ad.flatten().unwrap().iter().map(|x| x.to_bits()).collect();
        let b: Vec<u32> = back
            .flatten()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(a, b);
        save_adapter(&back, &d2, "tiny").unwrap();
        for f in ["adapter_config.json", "adapter_model.safetensors"] {
            assert_eq!(
                std::fs::read(d1.join(f)).unwrap(),
                std::fs::read(d2.join(f)).unwrap(),
                "{f}"
            );
        }
        // PEFT names and shapes.
        let st = candle_core::safetensors::load(d1.join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
        let a0 = &st["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"];
        assert_eq!(a0.dims(), &[3, cfg.hidden_size]);
        let b1 = &st["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"];
        assert_eq!(b1.dims(), &[cfg.hidden_size, 3]);
        assert_eq!(st.len(), 2 * 3 * cfg.num_hidden_layers);
        // A model with other shapes is refused, naming the problem.
        let mut other = cfg.clone();
        other.num_hidden_layers = 3;
        let e = load_adapter(&d1, &other, DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing tensor base_model.model.model.layers.2"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! LoRA adapters: configuration ([`LoraConfig`]), the trainable matrices of every targeted
//! projection ([`Adapter`]) and the branch a [`crate::layers::linear::Linear`] adds ([`LoraBranch`]).
//!
//! For a frozen projection `W` (`(out, in)`), LoRA adds `scaling * B A x` with `A` `(r, in)`,
//! `B` `(out, r)`, `scaling = alpha / r`, dropout on the branch's input while training.
//! Initialisation follows PEFT: `A` Kaiming-uniform with `a = sqrt(5)` (that is
//! `U(-1/sqrt(in), 1/sqrt(in))`), `B` zero, so a fresh adapter leaves the model unchanged.
//!
//! Flat order (what aggregators see, [`Adapter::flatten`]): layer ascending, then module in
//! [`TargetModule::ALL`] order (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`,
//! `down_proj`, skipping untargeted ones), then `A` before `B`, each row-major.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use crate::config::ModelConfig;
use crate::{Error, Result};

/// A projection LoRA can target, named as in Hugging Face checkpoints and PEFT configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetModule {
    /// `self_attn.q_proj`
    QProj,
    /// `self_attn.k_proj`
    KProj,
    /// `self_attn.v_proj`
    VProj,
    /// `self_attn.o_proj`
    OProj,
    /// `mlp.gate_proj`
    GateProj,
    /// `mlp.up_proj`
    UpProj,
    /// `mlp.down_proj`
    DownProj,
}

impl TargetModule {
    /// All modules in the fixed flat-vector order.
    pub const ALL: [TargetModule; 7] = [
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// The module's short name (`q_proj`).
    pub fn name(self) -> &'static str {
        match self {
            Self::QProj => "q_proj",
            Self::KProj => "k_proj",
            Self::VProj => "v_proj",
            Self::OProj => "o_proj",
            Self::GateProj => "gate_proj",
            Self::UpProj => "up_proj",
            Self::DownProj => "down_proj",
        }
    }

    /// The parent scope in a layer: `self_attn` or `mlp`.
    pub fn parent(self) -> &'static str {
        match self {
            Self::QProj | Self::KProj | Self::VProj | Self::OProj => "self_attn",
            _ => "mlp",
        }
    }

    /// Parses a short name (`q_proj`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// `(out_features, in_features)` of the projection in a model of config `cfg`.
    pub fn shape(self, cfg: &ModelConfig) -> (usize, usize) {
        match self {
            Self::QProj => (cfg.q_size(), cfg.hidden_size),
            Self::KProj | Self::VProj => (cfg.kv_size(), cfg.hidden_size),
            Self::OProj => (cfg.hidden_size, cfg.q_size()),
            Self::GateProj | Self::UpProj => (cfg.intermediate_size, cfg.hidden_size),
            Self::DownProj => (cfg.hidden_size, cfg.intermediate_size),
        }
    }
}

/// LoRA hyper-parameters (PEFT's `r`, `lora_alpha`, `lora_dropout`, `target_modules`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank `r`.
    pub rank: usize,
    /// `lora_alpha`; the branch is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Dropout probability on the branch input while training.
    pub dropout: f64,
    /// Targeted projections (kept sorted in [`TargetModule::ALL`] order, no duplicates).
    pub target_modules: Vec<TargetModule>,
}

impl LoraConfig {
    /// A config with targets given by name; sorts and deduplicates them.
    ///
    /// # Errors
    /// [`Error::Adapter`] for an unknown module name, a zero rank or a dropout outside `[0, 1)`.
    pub fn new(rank: usize, alpha: f64, dropout: f64, targets: &[&str]) -> Result<Self> {
        let bad = |message: String| Error::Adapter {
            path: "-".into(),
            message,
        };
        if rank == 0 {
            return Err(bad("lora rank must be positive, got 0".into()));
        }
        if !(0.0..1.0).contains(&dropout) {
            return Err(bad(format!(
                "lora dropout must be in [0, 1), got {dropout}"
            )));
        }
        let mut target_modules = targets
            .iter()
            .map(|t| {
                TargetModule::parse(t).ok_or_else(|| {
                    bad(format!(
                        "unknown lora target module {t:?}; expected one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        target_modules.sort();
        target_modules.dedup();
        if target_modules.is_empty() {
            return Err(bad("lora needs at least one target module".into()));
        }
        Ok(Self {
            rank,
            alpha,
            dropout,
            target_modules,
        })
    }

    /// `alpha / rank`.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// The trainable pair of one targeted projection.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// Decoder layer index.
    pub layer: usize,
    /// Which projection.
    pub module: TargetModule,
    /// `lora_A`, `(r, in)`.
    pub a: Var,
    /// `lora_B`, `(out, r)`.
    pub b: Var,
}

/// The LoRA branch a frozen linear adds: `scaling * B A dropout(x)`. `a`, `b` share storage
/// with the [`Adapter`]'s vars, so optimizer updates show here at once.
#[derive(Debug, Clone)]
pub struct LoraBranch {
    /// `(r, in)`.
    pub a: Tensor,
    /// `(out, r)`.
    pub b: Tensor,
    /// `alpha / r`.
    pub scaling: f64,
    /// Dropout probability on the input while training.
    pub dropout: f64,
}

/// All LoRA pairs of a model, in flat order.
#[derive(Debug, Clone)]
pub struct Adapter {
    config: LoraConfig,
    pairs: Vec<LoraPair>,
}

impl Adapter {
    /// A fresh adapter initialised as PEFT does, from a seeded generator (same seed, same `A`).
    ///
    /// # Errors
    /// Tensor allocation errors.
    pub fn new(
        config: &LoraConfig,
        model: &ModelConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut pairs = Vec::new();
        for layer in 0..model.num_hidden_layers {
            for &module in &config.target_modules {
                let (out, inp) = module.shape(model);
                let bound = 1.0 / (inp as f64).sqrt();
                let a: Vec<f64> = (0..config.rank * inp)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                let a = Tensor::from_vec(a, (config.rank, inp), device)?.to_dtype(dtype)?;
                let b = Tensor::zeros((out, config.rank), dtype, device)?;
                pairs.push(LoraPair {
                    layer,
                    module,
                    a: Var::from_tensor(&a)?,
                    b: Var::from_tensor(&b)?,
                });
            }
        }
        Ok(Self {
            config: config.clone(),
            pairs,
        })
    }

    /// Builds an adapter from given pairs (used by the PEFT loader); sorts them into flat order.
    ///
    /// # Errors
    /// [`Error::Adapter`] when a targeted (layer, module) is missing or has the wrong shape.
    pub fn from_pairs(
        config: LoraConfig,
        model: &ModelConfig,
        mut pairs: Vec<LoraPair>,
    ) -> Result<Self> {
        pairs.sort_by_key(|p| (p.layer, p.module));
        let expected: Vec<(usize, TargetModule)> = (0..model.num_hidden_layers)
            .flat_map(|l| config.target_modules.iter().map(move |&m| (l, m)))
            .collect();
        let got: Vec<(usize, TargetModule)> = pairs.iter().map(|p| (p.layer, p.module)).collect();
        if got != expected {
            return Err(Error::Adapter {
                path: "-".into(),
                message: format!(
                    "adapter holds {} lora pairs, the model and config need {} (layers x target modules)",
                    got.len(),
                    expected.len()
                ),
            });
        }
        for p in &pairs {
            let (out, inp) = p.module.shape(model);
            if p.a.dims() != [config.rank, inp] || p.b.dims() != [out, config.rank] {
                return Err(Error::Adapter {
                    path: "-".into(),
                    message: format!(
                        "layer {} {}: lora_A {:?} / lora_B {:?}, expected [{}, {inp}] / [{out}, {}]",
                        p.layer,
                        p.module.name(),
                        p.a.dims(),
                        p.b.dims(),
                        config.rank,
                        config.rank
                    ),
                });
            }
        }
        Ok(Self { config, pairs })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The pairs in flat order.
    pub fn pairs(&self) -> &[LoraPair] {
        &self.pairs
    }

    /// The pair of `(layer, module)`, if targeted.
    pub fn pair(&self, layer: usize, module: TargetModule) -> Option<&LoraPair> {
        self.pairs
            .iter()
            .find(|p| p.layer == layer && p.module == module)
    }

    /// The branch a linear layer adds for `(layer, module)`, if targeted.
    pub fn branch(&self, layer: usize, module: TargetModule) -> Option<LoraBranch> {
        self.pair(layer, module).map(|p| LoraBranch {
            a: p.a.as_tensor().clone(),
            b: p.b.as_tensor().clone(),
            scaling: self.config.scaling(),
            dropout: self.config.dropout,
        })
    }

    /// Every trainable var in flat order: `A`, `B` of each pair.
    pub fn vars(&self) -> Vec<Var> {
        self.pairs
            .iter()
            .flat_map(|p| [p.a.clone(), p.b.clone()])
            .collect()
    }

    /// Number of trainable scalars (length of [`Self::flatten`]).
    pub fn num_params(&self) -> usize {
        self.pairs
            .iter()
            .map(|p| p.a.elem_count() + p.b.elem_count())
            .sum()
    }

    /// All trainable values as one f32 vector in flat order (see the module docs).
    ///
    /// # Errors
    /// Tensor read errors.
    pub fn flatten(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.num_params());
        for v in self.vars() {
            out.extend(
                v.as_tensor()
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?,
            );
        }
        Ok(out)
    }

    /// Overwrites every trainable value from a flat vector produced by [`Self::flatten`].
    ///
    /// # Errors
    /// [`Error::Adapter`] when `flat` has the wrong length.
    pub fn unflatten(&self, flat: &[f32]) -> Result<()> {
        if flat.len() != self.num_params() {
            return Err(Error::Adapter {
                path: "-".into(),
                message: format!(
                    "flat parameter vector has {} values, the adapter has {}",
                    flat.len(),
                    self.num_params()
                ),
            });
        }
        let mut at = 0;
        for v in self.vars() {
            let n = v.elem_count();
            let t = Tensor::from_slice(&flat[at..at + n], v.shape(), v.device())?
                .to_dtype(v.dtype())?;
            v.set(&t)?;
            at += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tiny_config;

    #[test]
    fn flatten_unflatten_round_trip_and_order() {
        let cfg = tiny_config();
        let lc = LoraConfig::new(2, 4.0, 0.0, &["v_proj", "q_proj", "down_proj"]).unwrap();
        assert_eq!(
            lc.target_modules,
            vec![
                TargetModule::QProj,
                TargetModule::VProj,
                TargetModule::DownProj
            ]
        );
        let ad = Adapter::new(&lc, &cfg, 7, DType::F32, &Device::Cpu).unwrap();
        let order: Vec<_> = ad.pairs().iter().map(|p| (p.layer, p.module)).collect();
        assert_eq!(order[0], (0, TargetModule::QProj));
        assert_eq!(order[3], (1, TargetModule::QProj));
        let flat = ad.flatten().unwrap();
        assert_eq!(flat.len(), ad.num_params());
        // Fresh B is zero, A within PEFT's Kaiming bound.
        let (_, inp) = TargetModule::QProj.shape(&cfg);
        let a0 = 2 * inp;
        assert!(flat[..a0]
            .iter()
            .all(|x| x.abs() <= 1.0 / (inp as f32).sqrt()));
        assert!(flat[..a0].iter().any(|x| *x != 0.0));
        let (out, _) = TargetModule::QProj.shape(&cfg);
        assert!(flat[a0..a0 + out * 2].iter().all(|x| *x == 0.0));
        let new: Vec<f32> = (0..flat.len()).map(|i| i as f32 * 0.001).collect();
        ad.unflatten(&new).unwrap();
        assert_eq!(ad.flatten().unwrap(), new);
        // The second var of the flat order is layer 0's q_proj B, row-major.
        let b = ad.pairs()[0]
            .b
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(b, new[a0..a0 + out * 2].to_vec());
        assert!(ad.unflatten(&new[1..]).is_err());
        let same = Adapter::new(&lc, &cfg, 7, DType::F32, &Device::Cpu).unwrap();
        let other = Adapter::new(&lc, &cfg, 8, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(same.flatten().unwrap()[..a0], flat[..a0]);
        assert_ne!(other.flatten().unwrap()[..a0], flat[..a0]);
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(LoraConfig::new(0, 1.0, 0.0, &["q_proj"]).is_err());
        assert!(LoraConfig::new(4, 1.0, 1.0, &["q_proj"]).is_err());
        let e = LoraConfig::new(4, 1.0, 0.0, &["qproj"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"qproj\""), "{e}");
    }
}

//! The sections of an experiment config, each a serde struct with defaults that rejects
//! unknown keys. Cross-field checks live in [`ExperimentConfig::validate`].

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    compression::CompressionSection,
    data::DataConfig,
    eval::EvalSection,
    privacy::{self, PrivacyMode, PrivacySection},
};

pub use crate::plugin_host::ComponentParams;

/// A whole experiment: one run, or a sweep over methods, aggregators and seeds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// Name, methods, aggregators, seeds, output directory.
    pub experiment: ExperimentSection,
    /// The base model.
    pub model: ModelSection,
    /// The LoRA adapter that clients train.
    pub lora: LoraSection,
    /// The preference data.
    pub data: DataConfig,
    /// How examples are dealt out to clients.
    pub partition: PartitionSection,
    /// Rounds, clients, faults.
    pub federation: FederationSection,
    /// Local training on each client.
    pub training: TrainingSection,
    /// Parameters of each loss, by component name (`[losses.dpo] beta = 0.1`).
    pub losses: BTreeMap<String, ComponentParams>,
    /// Parameters of each aggregator, by component name (`[aggregators.fedprox] mu = 0.01`).
    pub aggregators: BTreeMap<String, ComponentParams>,
    /// Where else to look for plugins.
    pub plugins: PluginsSection,
    /// Benchmarks the global model is scored on.
    pub eval: EvalSection,
    /// How many checkpoints a run keeps.
    #[serde(skip_serializing_if = "CheckpointSection::is_default")]
    pub checkpoint: CheckpointSection,
    /// Client-level differential privacy (off by default).
    #[serde(skip_serializing_if = "PrivacySection::is_off")]
    pub privacy: PrivacySection,
    /// Codecs of the uplink and downlink (none by default).
    #[serde(skip_serializing_if = "CompressionSection::is_off")]
    pub compression: CompressionSection,
    /// Parameters of each codec, by component name (`[codecs.top-k] fraction = 0.01`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub codecs: BTreeMap<String, ComponentParams>,
}

/// How a round picks its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Exactly `clients_per_round` clients, without replacement.
    #[default]
    Fixed,
    /// Each client independently with probability `clients_per_round / clients`.
    Poisson,
}

impl Sampling {
    fn is_fixed(&self) -> bool {
        *self == Self::Fixed
    }
}

impl FederationSection {
    /// q: the rate at which Poisson sampling takes each client, `clients_per_round / clients`.
    pub fn sampling_rate(&self) -> f64 {
        f64::from(self.clients_per_round) / f64::from(self.clients.max(1))
    }

    /// How rounds draw their clients, for the privacy accountant.
    pub fn client_draw(&self) -> privacy::ClientDraw {
        let rate = self.sampling_rate();
        match self.sampling {
            Sampling::Poisson => privacy::ClientDraw::Poisson { rate },
            Sampling::Fixed => privacy::ClientDraw::FixedSize { rate },
        }
    }
}

/// `[checkpoint]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSection {
    /// The newest checkpoints kept; older ones are deleted after each round.
    pub keep: u32,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self { keep: 2 }
    }
}

impl CheckpointSection {
    /// Left out of a run's `config.toml` at its default, so runs written before the section
    /// existed still match their config.
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `[experiment]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentSection {
    /// Name of the sweep directory under `output_dir`.
    pub name: String,
    /// Loss components to run (`dpo`, `kto`, `ktor`, `simpo`, ...).
    pub methods: Vec<String>,
    /// Aggregator components to run (`fedavg`, `fedprox`, ...).
    pub aggregators: Vec<String>,
    /// Seeds to run; each seeds sampling, partition, LoRA init, dropout and faults.
    pub seeds: Vec<u64>,
    /// Parent directory of sweep directories.
    pub output_dir: PathBuf,
}

impl Default for ExperimentSection {
    fn default() -> Self {
        Self {
            name: "experiment".to_owned(),
            methods: vec!["dpo".to_owned()],
            aggregators: vec!["fedavg".to_owned()],
            seeds: vec![0],
            output_dir: PathBuf::from("runs"),
        }
    }
}

/// Numeric precision of the frozen base model (`model.dtype`, `--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
#[value(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats everywhere.
    #[default]
    F32,
    /// bfloat16 base weights and activations; LoRA, optimizer and log-softmax stay f32.
    Bf16,
}

impl Precision {
    /// The candle dtype of the frozen weights.
    pub fn dtype(self) -> candle_core::DType {
        match self {
            Precision::F32 => candle_core::DType::F32,
            Precision::Bf16 => candle_core::DType::BF16,
        }
    }

    /// `f32` or `bf16`, as configs and flags spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// A GGUF file or a Hugging Face model directory.
    pub path: PathBuf,
    /// `f32` or `bf16`.
    pub dtype: Precision,
    /// `cpu` (default), `auto`, or `cuda:N` in a CUDA build.
    pub device: String,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            dtype: Precision::F32,
            device: "cpu".to_owned(),
        }
    }
}

/// `[lora]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraSection {
    /// Rank r.
    pub rank: usize,
    /// Scaling numerator: the update is scaled by alpha / r.
    pub alpha: f64,
    /// Dropout on the adapter's input during training.
    pub dropout: f64,
    /// Modules that get an adapter.
    pub targets: Vec<String>,
}

impl Default for LoraSection {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: vec!["q_proj".to_owned(), "v_proj".to_owned()],
        }
    }
}

/// `[partition]`: the partitioner for paired and unpaired methods. Methods that need
/// redistributed data (KTOR) rearrange its partition with `redistribute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionSection {
    /// Partitioner component (`iid`, `dirichlet`, `natural`, `quantity-skew`).
    pub name: String,
    /// Its parameters.
    pub params: ComponentParams,
    /// Parameters of `redistribute` when a method needs redistributed data (`sizes`).
    pub redistribute: ComponentParams,
}

impl Default for PartitionSection {
    fn default() -> Self {
        Self {
            name: "iid".to_owned(),
            params: ComponentParams::new(),
            redistribute: ComponentParams::new(),
        }
    }
}

/// `[federation]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationSection {
    /// Number of clients the data is split into.
    pub clients: u32,
    /// Clients sampled each round (without replacement).
    pub clients_per_round: u32,
    /// Number of rounds.
    pub rounds: u32,
    /// Probability that a sampled client fails mid-round (fault injection).
    pub dropout: f64,
    /// Seconds a round waits for clients; clients still training then are dropped. None: no limit.
    pub deadline_seconds: Option<f64>,
    /// Evaluate the global adapter every this many rounds (and after the last one); 0: only at the end.
    pub eval_every: u32,
    /// How a round picks its clients (written to a run's config only when Poisson).
    #[serde(skip_serializing_if = "Sampling::is_fixed")]
    pub sampling: Sampling,
}

impl Default for FederationSection {
    fn default() -> Self {
        Self {
            clients: 10,
            clients_per_round: 2,
            rounds: 10,
            dropout: 0.0,
            deadline_seconds: None,
            eval_every: 0,
            sampling: Sampling::Fixed,
        }
    }
}

/// Local steps per round: a fixed number, or the paper's rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocalSteps {
    /// This many optimizer steps per client per round.
    Fixed(u32),
    /// `"epochs:E"` in configs: about E epochs of each client's data spread over the rounds the
    /// client is expected to be sampled in (the paper used E = 3).
    Epochs(EpochsRule),
}

/// The paper's local-steps rule, written `"epochs:3"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EpochsRule {
    /// Epochs over the whole run.
    pub epochs: f64,
}

impl TryFrom<String> for EpochsRule {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let epochs = value
            .strip_prefix("epochs:")
            .and_then(|e| e.trim().parse::<f64>().ok())
            .filter(|e| e.is_finite() && *e > 0.0)
            .ok_or_else(|| {
                format!("{value:?} is neither a step count nor \"epochs:E\" with E > 0")
            })?;
        Ok(Self { epochs })
    }
}

impl From<EpochsRule> for String {
    fn from(rule: EpochsRule) -> Self {
        format!("epochs:{}", rule.epochs)
    }
}

/// `[training]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSection {
    /// Examples (pairs for paired losses, answers otherwise) per optimizer step.
    pub batch_size: usize,
    /// Micro-batches accumulated into one step.
    pub grad_accum: usize,
    /// Optimizer steps per client per round.
    pub local_steps: LocalSteps,
    /// Learning rate of the first round.
    pub lr: f64,
    /// Learning rate of the last round (cosine decay over rounds, constant within a round).
    pub lr_min: f64,
    /// Clip the gradient to this global norm; 0 disables clipping.
    pub max_grad_norm: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Keep each client's optimizer state across rounds instead of re-creating it each round.
    pub keep_optimizer_state: bool,
    /// A client update whose mean loss exceeds this is rejected as diverged.
    pub max_loss: f64,
    /// A client update (its adapter minus the global one) whose L2 norm exceeds this is
    /// rejected for the round; 0 (the default) sets no bound. Left out of a run's
    /// `config.toml` at 0, so runs written before the key existed still match their config.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_update_norm: f64,
    /// Run a pair's prompt once for both answers (a shared-prefix row, the second answer blind
    /// to the first): the same log-probs and gradients for about a quarter less work on DPO's
    /// pairs; false runs each answer as its own sequence, as TRL does. Left out of a run's
    /// `config.toml` when true, so runs written before the key existed still match their config.
    #[serde(skip_serializing_if = "is_true")]
    pub shared_prefix: bool,
    /// Keep only each decoder layer's input for the backward pass and run the layer again
    /// there: activation memory of one layer instead of all, for about a third more time per
    /// step; the same log-probs and (to rounding) gradients. Left out of a run's `config.toml`
    /// when false, as the keys below at their defaults.
    #[serde(skip_serializing_if = "is_false")]
    pub activation_checkpointing: bool,
    /// Answer tokens whose vocabulary-sized logits exist at once: a step with more runs the
    /// output head and log-softmax in chunks of this many, recomputing each in backward.
    #[serde(skip_serializing_if = "is_default_head_chunk")]
    pub head_chunk: usize,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_default_head_chunk(value: &usize) -> bool {
    *value == fedpref_model::kernels::chunked_head::DEFAULT_HEAD_CHUNK
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

fn is_true(value: &bool) -> bool {
    *value
}

impl Default for TrainingSection {
    fn default() -> Self {
        Self {
            batch_size: 4,
            grad_accum: 1,
            local_steps: LocalSteps::Fixed(5),
            lr: 1e-4,
            lr_min: 1e-5,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            keep_optimizer_state: false,
            max_loss: 1e3,
            max_update_norm: 0.0,
            shared_prefix: true,
            activation_checkpointing: false,
            head_chunk: fedpref_model::kernels::chunked_head::DEFAULT_HEAD_CHUNK,
        }
    }
}

/// `[plugins]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsSection {
    /// Extra plugin directories, searched after the executable's directory and
    /// `FEDPREF_PLUGIN_PATH`.
    pub dirs: Vec<PathBuf>,
}

/// The longest `federation.deadline_seconds`: a year (larger values overflow a timer).
const MAX_DEADLINE_SECONDS: f64 = 3.2e7;

/// The most `"epochs:E"` of `training.local_steps` (more would overflow the step count).
const MAX_EPOCHS: f64 = 1e6;

/// Refuses NaN and infinite values, naming the key.
fn finite(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(format!("{key} = {value} must be a finite number"))
    }
}

impl ExperimentConfig {
    /// Checks values and cross-field rules that need no plugin or file.
    ///
    /// # Errors
    /// A message naming the key, the bad value and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_experiment()?;
        self.validate_federation()?;
        self.validate_training()?;
        self.validate_lora_and_device()?;
        self.validate_privacy()?;
        self.data.validate().map_err(|e| e.to_string())?;
        self.eval.validate()?;
        Ok(())
    }

    fn validate_experiment(&self) -> Result<(), String> {
        let e = &self.experiment;
        // The sweep directory is output_dir/name: a name must stay one folder inside it.
        if e.name.is_empty()
            || e.name.contains(['/', '\\'])
            || matches!(e.name.as_str(), "." | "..")
        {
            return Err(format!(
                "experiment.name = {:?} must be a folder name: not empty, not \".\" or \"..\", no slashes",
                e.name
            ));
        }
        for (key, list) in [
            ("experiment.methods", &e.methods),
            ("experiment.aggregators", &e.aggregators),
        ] {
            if list.is_empty() {
                return Err(format!("{key} is empty; name at least one component"));
            }
        }
        if e.seeds.is_empty() {
            return Err("experiment.seeds is empty; give at least one seed".to_owned());
        }
        Ok(())
    }

    fn validate_federation(&self) -> Result<(), String> {
        let f = &self.federation;
        if f.clients == 0 {
            return Err("federation.clients = 0 must be at least 1".to_owned());
        }
        if f.clients_per_round == 0 || f.clients_per_round > f.clients {
            return Err(format!(
                "federation.clients_per_round = {} must be between 1 and federation.clients = {}",
                f.clients_per_round, f.clients
            ));
        }
        if f.rounds == 0 {
            return Err("federation.rounds = 0 must be at least 1".to_owned());
        }
        if !(0.0..1.0).contains(&f.dropout) {
            return Err(format!(
                "federation.dropout = {} must be in [0, 1)",
                f.dropout
            ));
        }
        if let Some(deadline) = f.deadline_seconds {
            if !(deadline > 0.0 && deadline <= MAX_DEADLINE_SECONDS) {
                return Err(format!(
                    "federation.deadline_seconds = {deadline} must be positive and at most {MAX_DEADLINE_SECONDS:e} (a year)"
                ));
            }
        }
        Ok(())
    }

    fn validate_privacy(&self) -> Result<(), String> {
        let p = &self.privacy;
        if p.mode == PrivacyMode::None {
            return Ok(());
        }
        if !(p.clip_norm > 0.0 && p.clip_norm.is_finite()) {
            return Err(format!(
                "privacy.clip_norm = {} must be positive",
                p.clip_norm
            ));
        }
        if !(p.noise_multiplier > 0.0 && p.noise_multiplier.is_finite()) {
            return Err(format!(
                "privacy.noise_multiplier = {} must be positive (without noise there is no guarantee)",
                p.noise_multiplier
            ));
        }
        if !(p.delta > 0.0 && p.delta < 1.0) {
            return Err(format!("privacy.delta = {} must be in (0, 1)", p.delta));
        }
        if p.epsilon_budget < 0.0 || !p.epsilon_budget.is_finite() {
            return Err(format!(
                "privacy.epsilon_budget = {} must be 0 (no budget) or positive",
                p.epsilon_budget
            ));
        }
        if p.target_quantile != 0.0 {
            self.validate_adaptive_clipping()?;
        }
        if !p.client_level() {
            // Example-level ε depends on each client's number of examples: the run checks the
            // budget once the data is dealt (`Experiment::prepare`).
            return Ok(());
        }
        let draw = self.federation.client_draw();
        let spent = |rounds| privacy::epsilon_after(p, draw, rounds);
        let rounds = self.federation.rounds;
        if p.epsilon_budget > 0.0 && spent(rounds) > p.epsilon_budget {
            let affordable = (0..rounds)
                .take_while(|&r| spent(r + 1) <= p.epsilon_budget)
                .count();
            return Err(format!(
                "privacy.epsilon_budget = {}: {rounds} rounds spend epsilon = {:.3} at delta = {}; \
                 {affordable} rounds fit the budget, or raise privacy.noise_multiplier",
                p.epsilon_budget,
                spent(rounds),
                p.delta
            ));
        }
        Ok(())
    }

    fn validate_adaptive_clipping(&self) -> Result<(), String> {
        let p = &self.privacy;
        if !p.client_level() {
            return Err(format!(
                "privacy.target_quantile = {}: adaptive clipping is for privacy.mode = \"client\"",
                p.target_quantile
            ));
        }
        if !(p.target_quantile > 0.0 && p.target_quantile < 1.0) {
            return Err(format!(
                "privacy.target_quantile = {} must be in (0, 1), or 0 for a fixed clip norm",
                p.target_quantile
            ));
        }
        if !(p.clip_learning_rate > 0.0 && p.clip_learning_rate.is_finite()) {
            return Err(format!(
                "privacy.clip_learning_rate = {} must be positive",
                p.clip_learning_rate
            ));
        }
        if !(p.quantile_noise >= 0.0 && p.quantile_noise.is_finite()) {
            return Err(format!(
                "privacy.quantile_noise = {} must be positive, or 0 for clients per round / 20",
                p.quantile_noise
            ));
        }
        let expected = self.federation.sampling_rate() * f64::from(self.federation.clients);
        if p.update_noise_multiplier(expected).is_none() {
            return Err(format!(
                "privacy.quantile_noise = {} (sigma_b) must exceed privacy.noise_multiplier / 2 = {}: \
                 the count of updates within the clip norm shares the noise budget and would \
                 leave none for the updates; raise privacy.quantile_noise",
                p.quantile_noise_for(expected),
                p.noise_multiplier / 2.0
            ));
        }
        Ok(())
    }

    fn validate_training(&self) -> Result<(), String> {
        let t = &self.training;
        if t.batch_size == 0 || t.grad_accum == 0 || t.head_chunk == 0 {
            return Err(
                "training.batch_size, training.grad_accum and training.head_chunk must be at least 1"
                    .to_owned(),
            );
        }
        if matches!(t.local_steps, LocalSteps::Fixed(0)) {
            return Err("training.local_steps = 0 must be at least 1".to_owned());
        }
        if let LocalSteps::Epochs(rule) = t.local_steps {
            if rule.epochs > MAX_EPOCHS {
                return Err(format!(
                    "training.local_steps = \"epochs:{}\" must be at most {MAX_EPOCHS} epochs",
                    rule.epochs
                ));
            }
        }
        for (key, value) in [
            ("training.lr", t.lr),
            ("training.lr_min", t.lr_min),
            ("training.max_grad_norm", t.max_grad_norm),
            ("training.weight_decay", t.weight_decay),
            ("training.max_loss", t.max_loss),
            ("training.max_update_norm", t.max_update_norm),
        ] {
            finite(key, value)?;
        }
        if !(t.lr > 0.0 && t.lr_min >= 0.0 && t.lr_min <= t.lr) {
            return Err(format!(
                "training.lr = {} and training.lr_min = {} must satisfy 0 <= lr_min <= lr, lr > 0",
                t.lr, t.lr_min
            ));
        }
        if t.max_grad_norm < 0.0 || t.weight_decay < 0.0 || t.max_update_norm < 0.0 {
            return Err(
                "training.max_grad_norm, training.weight_decay and training.max_update_norm must not be negative"
                    .to_owned(),
            );
        }
        Ok(())
    }

    fn validate_lora_and_device(&self) -> Result<(), String> {
        if self.checkpoint.keep == 0 {
            return Err("checkpoint.keep = 0 must be at least 1 (the newest checkpoint is what a run resumes from)".to_owned());
        }
        let l = &self.lora;
        finite("lora.alpha", l.alpha)?;
        if l.rank == 0 || l.alpha <= 0.0 || !(0.0..1.0).contains(&l.dropout) || l.targets.is_empty()
        {
            return Err(format!(
                "lora: rank = {} must be >= 1, alpha = {} > 0, dropout = {} in [0, 1), targets non-empty",
                l.rank, l.alpha, l.dropout
            ));
        }
        if !matches!(self.model.device.as_str(), "cpu" | "auto")
            && !self.model.device.starts_with("cuda")
        {
            return Err(format!(
                "model.device = {:?} is not one of cpu, auto, cuda:N",
                self.model.device
            ));
        }
        Ok(())
    }
}

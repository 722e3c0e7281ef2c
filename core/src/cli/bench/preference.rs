//! `fedpref bench dpo-step | kto-step`: local preference-training steps, timed as `fedpref run`
//! takes them ([`train_client`]: the loss plugin, the surrogate-gradient bridge, AdamW), on
//! synthetic rows that `xtask/bench/trl_step.py` receives too, so TRL trains on the same token
//! ids in the same run.
//!
//! Both sides precompute the reference log-probs before the timed steps (TRL's
//! `precompute_ref_log_probs`; here the reference cache, KTO's KL sequences included) and keep
//! the LoRA dropout on. Every row has exactly `prompt_tokens` prompt ids and `answer_tokens`
//! ids per answer (EOS included), so a step's tokens are known without counting padding:
//! tokens/s is `sequences x (prompt + answer) / s`, the policy's sequences only (KTO's KL
//! sequences are extra work on both sides, not counted).

use std::time::Instant;

use rand::{seq::IndexedRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::workload::{median, BenchContext, BenchModel};
use fedpref::train::units::Scored;
use fedpref::train::{
    fill_units, train_client, LocalJob, LocalOutcome, LocalSettings, LocalTrainer, ReferenceCache,
    StepRecord, Unit,
};
use fedpref::{Error, PluginHost, Result};
use fedpref_model::{logprobs::MaskedSequence, Adapter, LoraConfig, TextTokenizer};
use fedpref_plugin_api::ClientPlan;

/// The preference loss a step trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferenceLoss {
    /// DPO (sigmoid, beta 0.1) on (chosen, rejected) pairs.
    Dpo,
    /// KTO (beta 0.1, weights 1) on single labelled answers, with its KL batch.
    Kto,
}

impl PreferenceLoss {
    /// The loss plugin's name, and the script's `--loss`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dpo => "dpo",
            Self::Kto => "kto",
        }
    }
}

/// Preference-step settings.
#[derive(Debug, Clone)]
pub struct PreferenceStepBench {
    /// The loss.
    pub loss: PreferenceLoss,
    /// Pairs per step (DPO); KTO takes twice as many single answers, the same sequences.
    pub pairs_per_step: usize,
    /// Prompt ids per row.
    pub prompt_tokens: usize,
    /// Ids per answer, EOS included.
    pub answer_tokens: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// LoRA rank (alpha 2r, on q_proj and v_proj).
    pub rank: usize,
    /// LoRA dropout.
    pub dropout: f64,
    /// Run each pair's prompt once (`training.shared_prefix`).
    pub shared_prefix: bool,
}

/// A synthetic preference row, as the reference script receives it (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct PreferenceRow {
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Preferred answer ids, EOS last.
    pub chosen_ids: Vec<u32>,
    /// Dispreferred answer ids, EOS last.
    pub rejected_ids: Vec<u32>,
}

/// One preference-step result.
#[derive(Debug, Clone, Serialize)]
pub struct PreferenceStepReport {
    /// Where it ran.
    #[serde(flatten)]
    pub context: BenchContext,
    /// `dpo` or `kto`.
    pub loss: String,
    /// Median seconds per timed step.
    pub s_per_step: f64,
    /// Every timed step.
    pub step_times: Vec<f64>,
    /// Policy tokens per step (prompt and answer of each sequence).
    pub tokens_per_step: usize,
    /// `tokens_per_step / s_per_step`.
    pub tokens_per_s: f64,
    /// Seconds spent precomputing the units' reference log-probs (KTO's KL sequences get
    /// theirs in an untimed first pass over the same steps).
    pub reference_s: f64,
    /// Loss of every step, warm-up included.
    pub losses: Vec<f64>,
}

/// Words the synthetic texts are drawn from: common English, so they tokenize like prose.
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "this", "are", "or", "from", "at", "which", "but", "have", "an", "they", "you",
    "were", "there", "one", "all", "we", "their", "has", "been", "would", "will", "more", "when",
    "if", "no", "out", "so", "what", "up", "about", "into", "than", "them", "can", "only", "other",
    "new", "some", "could", "time", "these", "two", "may", "then", "do", "first", "any", "now",
    "such", "like", "over", "after", "also", "many", "before", "must", "through", "back", "years",
    "where", "much", "way", "well", "down", "should", "because", "each", "just", "people", "how",
    "little", "state", "good", "very", "make", "world", "still", "see", "work", "long", "here",
    "between", "both", "life", "under", "never", "day", "same", "another", "know", "while", "last",
    "might", "great", "old", "year", "off", "come", "since", "against", "right", "used", "take",
    "three", "river", "garden", "model", "number", "train", "answer", "question", "paper",
    "energy", "simple", "market", "history", "water", "light", "music", "system", "company",
    "program", "power", "family", "school",
];

/// `rows` rows of exactly `prompt_tokens` prompt ids and `answer_tokens` ids per answer (the
/// last one EOS), from seeded random prose.
///
/// # Errors
/// Tokenizer errors; a tokenizer without EOS or `answer_tokens < 2`.
pub fn synthetic_rows(
    tokenizer: &TextTokenizer,
    rows: usize,
    prompt_tokens: usize,
    answer_tokens: usize,
) -> Result<Vec<PreferenceRow>> {
    let (_, eos) = tokenizer
        .eos()
        .ok_or_else(|| Error::Usage("the model's tokenizer has no EOS token".into()))?;
    if answer_tokens < 2 || prompt_tokens == 0 {
        return Err(Error::Usage(
            "--prompt-tokens must be > 0 and --answer-tokens >= 2".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut prose = |prefix: String, n: usize| -> Result<Vec<u32>> {
        let mut text = prefix;
        loop {
            let ids = tokenizer.encode(&text)?;
            if ids.len() >= n {
                return Ok(ids[..n].to_vec());
            }
            text.push(' ');
            text.push_str(WORDS.choose(&mut rng).copied().unwrap_or("the"));
        }
    };
    (0..rows)
        .map(|i| {
            let prompt_ids = prose(format!("Question {i}:"), prompt_tokens)?;
            let mut answer = || -> Result<Vec<u32>> {
                let mut ids = prose(String::new(), answer_tokens - 1)?;
                ids.push(eos);
                Ok(ids)
            };
            Ok(PreferenceRow {
                prompt_ids,
                chosen_ids: answer()?,
                rejected_ids: answer()?,
            })
        })
        .collect()
}

fn scored(prompt: &[u32], answer: &[u32]) -> Scored {
    let mut ids = prompt.to_vec();
    ids.extend_from_slice(answer);
    let answer_mask = (0..ids.len()).map(|t| t >= prompt.len()).collect();
    Scored {
        sequence: MaskedSequence { ids, answer_mask },
        reference: f32::NAN,
    }
}

/// The loss's training units: pairs for DPO, each row's two answers as singles for KTO.
fn units(loss: PreferenceLoss, rows: &[PreferenceRow]) -> Vec<Unit> {
    rows.iter()
        .flat_map(|r| {
            let chosen = scored(&r.prompt_ids, &r.chosen_ids);
            let rejected = scored(&r.prompt_ids, &r.rejected_ids);
            match loss {
                PreferenceLoss::Dpo => vec![Unit::Pair { chosen, rejected }],
                PreferenceLoss::Kto => vec![
                    Unit::Single {
                        answer: chosen,
                        desirable: true,
                    },
                    Unit::Single {
                        answer: rejected,
                        desirable: false,
                    },
                ],
            }
        })
        .collect()
}

/// Runs the preference-step benchmark with the loss plugin from `host`.
///
/// # Errors
/// Loader, tokenizer, plugin or tensor errors; a client that dropped out.
pub fn preference_step(
    m: &BenchModel,
    host: &PluginHost,
    b: &PreferenceStepBench,
    rows: &[PreferenceRow],
) -> Result<PreferenceStepReport> {
    let mut decoder = m.load()?;
    let cfg = decoder.config().clone();
    let lora = LoraConfig::new(
        b.rank,
        2.0 * b.rank as f64,
        b.dropout,
        &["q_proj", "v_proj"],
    )?;
    let adapter = Adapter::new(&lora, &cfg, 0, candle_core::DType::F32, &m.device)?;
    let global = adapter.flatten()?;
    decoder.attach_adapter(adapter)?;
    let loss = host.loss(b.loss.name(), &serde_json::json!({ "beta": 0.1 }))?;
    let pad_id = cfg.eos_token_ids.first().copied().unwrap_or(0);

    let scratch = std::env::temp_dir().join(format!("fedpref-bench-{}", std::process::id()));
    let mut cache = ReferenceCache::open(&scratch.join("reference.bin"), "bench")?;
    let mut units = units(b.loss, rows);
    let started = Instant::now();
    fill_units(&mut cache, &decoder, &mut units, pad_id, |_| {})?;
    let reference_s = started.elapsed().as_secs_f64();
    let sequences_per_step = 2 * b.pairs_per_step;
    let job = LocalJob {
        round: 0,
        client: 0,
        units: &units,
        global: &global,
        plan: &ClientPlan::plain(),
        settings: LocalSettings {
            steps: (b.warmup + b.steps) as u32,
            batch_size: match b.loss {
                PreferenceLoss::Dpo => b.pairs_per_step,
                PreferenceLoss::Kto => sequences_per_step,
            },
            grad_accum: 1,
            lr: 1e-4,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            seed: 0,
            deadline: None,
            fail_before_step: None,
            shared_prefix: b.shared_prefix,
            example_privacy: None,
        },
        optimizer: None,
    };
    let mut trainer = LocalTrainer {
        decoder: &mut decoder,
        loss: &loss,
        pad_id,
        reference: Some(&mut cache),
    };
    if loss.spec().needs_kl_batch {
        // KTO forms its KL sequences step by step: a first pass over the same steps computes
        // their reference log-probs, so the timed pass finds them cached, as TRL precomputes.
        run_job(&mut trainer, &job)?;
    }
    let records = run_job(&mut trainer, &job)?;
    std::fs::remove_dir_all(&scratch).ok();

    let times: Vec<f64> = records[b.warmup..].iter().map(|r| r.seconds).collect();
    let s = median(&times);
    let tokens_per_step = sequences_per_step * (b.prompt_tokens + b.answer_tokens);
    Ok(PreferenceStepReport {
        context: BenchContext::new(m),
        loss: b.loss.name().to_owned(),
        s_per_step: s,
        step_times: times,
        tokens_per_step,
        tokens_per_s: tokens_per_step as f64 / s,
        reference_s,
        losses: records.iter().map(|r| r.loss).collect(),
    })
}

/// Trains the job once; the step records, or an error for a dropped client.
fn run_job(trainer: &mut LocalTrainer<'_>, job: &LocalJob<'_>) -> Result<Vec<StepRecord>> {
    match train_client(trainer, job, &|| false, &mut |_| {})? {
        LocalOutcome::Trained { steps, .. } => Ok(steps),
        LocalOutcome::Dropped(why) => Err(Error::Usage(format!(
            "the bench's client dropped out: {why:?}"
        ))),
    }
}

//! Local training of one client for one round: batches of its units, policy log-probs with
//! autograd, the loss plugin through the surrogate-gradient bridge, and AdamW steps under the
//! aggregator's client plan (FedProx's proximal term, SCAFFOLD's correction: [`super::plan`]).
//!
//! The bridge: the loss plugin returns `g_i = d loss / d logp_policy[i]`; backpropagating
//! `sum_i g_i * logp_policy[i]` (with `g` a constant) gives exactly `d loss / d theta`.

use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use fedpref_plugin_api::{ClientPlan, Label, LossBatch, LossOutput};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::kl_pairs::kl_sequences;
use super::optimizer::{AdamW, AdamWConfig, GradAccumulator};
use super::plan::planned_step;
use super::private_step::{ExamplePrivacy, PrivateSteps, StepPrivacy};
use super::reference::ReferenceSource;
use super::units::{label_counts, Scored, Unit};
use crate::{
    plugin_host::{LossHandle, MetricMeans},
    Error, Result,
};
use fedpref_model::{
    layers::context::ForwardCtx,
    logprobs::{sequence_logprobs, sequence_logprobs_with, MaskedSequence, SequenceBatch},
    Decoder,
};

/// How one client trains this round.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Optimizer steps.
    pub steps: u32,
    /// Units per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per step.
    pub grad_accum: usize,
    /// This round's learning rate.
    pub lr: f64,
    /// Global-norm clip; 0 disables.
    pub max_grad_norm: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Seed of this client's batch order and LoRA dropout this round.
    pub seed: u64,
    /// Stop (as a dropped client) when this instant passes.
    pub deadline: Option<Instant>,
    /// Fail on purpose (fault injection) before this step, if set.
    pub fail_before_step: Option<u32>,
    /// Run each pair's prompt once for both answers ([`SequenceBatch::shared_prefix`]).
    pub shared_prefix: bool,
    /// Example-level DP-SGD, when on: each step's batch Poisson-sampled, each example's
    /// gradient clipped, noise added ([`super::private_step`]).
    pub example_privacy: Option<ExamplePrivacy>,
}

/// One optimizer step's record, appended to `metrics/steps.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Round, 0-based.
    pub round: u32,
    /// Client index.
    pub client: u32,
    /// Step within the round, 0-based.
    pub step: u32,
    /// Mean loss over the step's micro-batches.
    pub loss: f64,
    /// Learning rate.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens through the model (policy and KL sequences, padding excluded).
    pub tokens: usize,
    /// Wall time of the step.
    pub seconds: f64,
    /// The loss plugin's metrics, averaged over micro-batches (NaN-free: undefined ones omitted).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Under example-level DP: the step's sample, clipping and ε. The loss and metrics are
    /// then means over the sampled examples, and 0 and empty when none was sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<StepPrivacy>,
}

impl StepRecord {
    /// Whether the step has a loss to average: under example-level DP a step whose Poisson
    /// sample drew no example has none (its `loss` is 0).
    pub fn has_loss(&self) -> bool {
        self.privacy.is_none_or(|p| p.examples > 0)
    }
}

/// Why a client returned no update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Dropout {
    /// Fault injection (`federation.dropout`).
    Failed {
        /// The step it failed at.
        step: u32,
    },
    /// The round's deadline passed.
    MissedDeadline {
        /// Steps completed.
        steps: u32,
    },
    /// The stop flag was raised (Ctrl-C).
    Interrupted,
    /// The loss or its gradient came out NaN or infinite, or the loss plugin failed (an error
    /// or a caught panic) on this client's batch: the update is rejected, the round goes on.
    Rejected {
        /// The step it happened at.
        step: u32,
        /// Which value, or the plugin's error.
        why: String,
    },
}

/// A client's result.
#[derive(Debug)]
pub enum LocalOutcome {
    /// Trained: new flat parameters and per-step records.
    Trained {
        /// Flat adapter parameters after training.
        params: Vec<f32>,
        /// One record per step.
        steps: Vec<StepRecord>,
        /// Optimizer state after the round (for `keep_optimizer_state`).
        optimizer: OptimizerState,
    },
    /// No update this round.
    Dropped(Dropout),
}

/// AdamW's moments, flat, for keeping a client's optimizer across rounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptimizerState {
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
    /// Steps taken.
    pub step: usize,
}

/// One client's local training in one round: everything that decides its result.
#[derive(Debug, Clone)]
pub struct LocalJob<'a> {
    /// Round, 0-based.
    pub round: u32,
    /// Client index.
    pub client: u32,
    /// The client's training units, reference log-probs filled in.
    pub units: &'a [Unit],
    /// The global adapter (flat f32) the client starts from.
    pub global: &'a [f32],
    /// The aggregator's plan for this client (FedProx's proximal term, SCAFFOLD's correction).
    pub plan: &'a ClientPlan,
    /// Steps, batch, learning rate, seed, faults.
    pub settings: LocalSettings,
    /// The client's optimizer state from an earlier round (`keep_optimizer_state`).
    pub optimizer: Option<&'a OptimizerState>,
}

/// What local training runs on: the decoder with its adapter attached, the loss plugin, the
/// padding id of batches, and where the reference log-probs of KL sequences come from.
pub struct LocalTrainer<'a> {
    /// The model; its adapter is set to the job's global parameters before training.
    pub decoder: &'a mut Decoder,
    /// The loss plugin.
    pub loss: &'a LossHandle,
    /// Token id right-padded batches are filled with.
    pub pad_id: u32,
    /// Reference log-probs of the KL sequences each step forms (the sweep's cache); needed only
    /// by a loss that asks for a KL batch.
    pub reference: Option<&'a mut dyn ReferenceSource>,
}

/// Trains the decoder's adapter from `job.global` on `job.units`; `stop` is polled before each
/// step (Ctrl-C) and `on_step` sees each step's record.
///
/// # Errors
/// Model and plugin errors.
pub fn train_client(
    trainer: &mut LocalTrainer<'_>,
    job: &LocalJob<'_>,
    stop: &dyn Fn() -> bool,
    on_step: &mut dyn FnMut(&StepRecord),
) -> Result<LocalOutcome> {
    let adapter = trainer
        .decoder
        .adapter()
        .ok_or_else(|| Error::Usage("no adapter attached to train".to_owned()))?;
    adapter.unflatten(job.global)?;
    let vars = adapter.vars();
    let mut optimizer = new_optimizer(vars.clone(), &job.settings, job.optimizer)?;
    trainer.decoder.set_training(Some(job.settings.seed))?;
    let mut records = Vec::new();
    let result = run_steps(trainer, job, &vars, &mut optimizer, stop, &mut |record| {
        on_step(&record);
        records.push(record);
    });
    trainer.decoder.set_training(None)?;
    if let Some(dropout) = result? {
        return Ok(LocalOutcome::Dropped(dropout));
    }
    let adapter = trainer
        .decoder
        .adapter()
        .ok_or_else(|| Error::Usage("the adapter vanished during training".to_owned()))?;
    let (m, v, step) = optimizer.export_state()?;
    Ok(LocalOutcome::Trained {
        params: adapter.flatten()?,
        steps: records,
        optimizer: OptimizerState { m, v, step },
    })
}

/// AdamW over `vars` with the job's settings, resuming `previous` moments when given.
fn new_optimizer(
    vars: Vec<Var>,
    settings: &LocalSettings,
    previous: Option<&OptimizerState>,
) -> Result<AdamW> {
    let config = AdamWConfig {
        lr: settings.lr,
        weight_decay: settings.weight_decay,
        max_grad_norm: (settings.max_grad_norm > 0.0).then_some(settings.max_grad_norm),
        ..AdamWConfig::with_lr(settings.lr)
    };
    let mut optimizer = AdamW::new(vars, config)?;
    if let Some(state) = previous.filter(|s| s.step > 0) {
        optimizer.import_state(&state.m, &state.v, state.step)?;
    }
    Ok(optimizer)
}

/// The job's optimizer steps, over units in a seeded order; `Some` when the client dropped out.
fn run_steps(
    trainer: &mut LocalTrainer<'_>,
    job: &LocalJob<'_>,
    vars: &[Var],
    optimizer: &mut AdamW,
    stop: &dyn Fn() -> bool,
    on_step: &mut dyn FnMut(StepRecord),
) -> Result<Option<Dropout>> {
    let settings = &job.settings;
    let mut accumulator = GradAccumulator::new(vars.to_vec());
    let mut order: Vec<usize> = (0..job.units.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(settings.seed));
    let mut private = settings
        .example_privacy
        .as_ref()
        .map(|privacy| PrivateSteps::new(privacy, settings.seed));
    let micro = settings.batch_size.min(job.units.len());
    let batch = micro * settings.grad_accum;
    let counts = label_counts(job.units);
    for step in 0..settings.steps {
        if let Some(dropout) = dropout_before(settings, step, stop) {
            return Ok(Some(dropout));
        }
        let started = Instant::now();
        let gradient = match private.as_mut() {
            Some(private) => private.gradient(trainer, (job.units, counts), settings, vars, step),
            None => {
                // The step's units, read cyclically from the seeded order.
                let picked: Vec<&Unit> = (0..batch)
                    .map(|k| &job.units[order[(step as usize * batch + k) % order.len()]])
                    .collect();
                step_gradient(
                    trainer,
                    &picked,
                    (micro, counts),
                    settings,
                    &mut accumulator,
                )
            }
        };
        let mut gradient = match gradient {
            Ok(gradient) => gradient,
            Err(e) => return rejected_at(step, e).map(Some),
        };
        let stats = planned_step(optimizer, vars, &mut gradient.grads, job.global, job.plan)?;
        let n = gradient.losses.len();
        on_step(StepRecord {
            round: job.round,
            client: job.client,
            step,
            loss: gradient.losses.iter().sum::<f64>() / n.max(1) as f64,
            lr: settings.lr,
            grad_norm: stats.grad_norm,
            tokens: gradient.tokens,
            seconds: started.elapsed().as_secs_f64(),
            metrics: gradient.metrics.means(),
            privacy: gradient.privacy,
        });
    }
    Ok(None)
}

/// One step's gradient and what its record reports.
#[derive(Default)]
pub(super) struct StepGradient {
    /// The gradient the optimizer steps on, in var order.
    pub grads: Vec<Tensor>,
    /// Each micro-batch's (or sampled example's) loss.
    pub losses: Vec<f64>,
    /// The loss plugin's metrics over them.
    pub metrics: MetricMeans,
    /// Tokens through the model.
    pub tokens: usize,
    /// Under example-level DP, the step's sample, clipping and ε.
    pub privacy: Option<StepPrivacy>,
}

/// The mean gradient over `picked`, in micro-batches of `micro` units, with the step's KL batch
/// when the loss asks for one.
pub(super) fn step_gradient(
    trainer: &mut LocalTrainer<'_>,
    picked: &[&Unit],
    (micro, counts): (usize, (u64, u64)),
    settings: &LocalSettings,
    accumulator: &mut GradAccumulator,
) -> Result<StepGradient> {
    let kl = step_kl_batch(trainer, picked)?;
    let mut gradient = StepGradient::default();
    for (units, kl) in picked.chunks(micro).zip(kl.chunks(micro)) {
        let kl: Vec<&Scored> = kl.iter().flatten().collect();
        let (output, tokens) = micro_batch(trainer, units, &kl, counts, settings, accumulator)?;
        gradient.tokens += tokens;
        gradient.losses.push(output.loss);
        gradient.metrics.add(&output.metrics);
    }
    gradient.grads = accumulator.take_mean()?;
    Ok(gradient)
}

/// A step's error as the client's rejection, when it is one: a non-finite value, or the loss
/// plugin failing on this client's batch; any other error stops the run.
fn rejected_at(step: u32, e: Error) -> Result<Dropout> {
    match e {
        Error::NonFinite { what } => Ok(Dropout::Rejected { step, why: what }),
        e @ (Error::Plugin { .. } | Error::PluginContract { .. }) => Ok(Dropout::Rejected {
            step,
            why: e.to_string(),
        }),
        e => Err(e),
    }
}

/// Why the client stops before `step`, if it does: Ctrl-C, injected failure, deadline.
fn dropout_before(settings: &LocalSettings, step: u32, stop: &dyn Fn() -> bool) -> Option<Dropout> {
    if stop() {
        return Some(Dropout::Interrupted);
    }
    if settings.fail_before_step == Some(step) {
        return Some(Dropout::Failed { step });
    }
    if settings.deadline.is_some_and(|d| Instant::now() > d) {
        return Some(Dropout::MissedDeadline { steps: step });
    }
    None
}

/// The KL sequence of each of the step's `units` (each answer's prompt with another answer of
/// the step, [`kl_sequences`]) with its reference log-prob, when the loss asks for a KL batch;
/// `None` for a pair, an answer left without a partner, or a loss without a KL batch.
fn step_kl_batch(trainer: &mut LocalTrainer<'_>, units: &[&Unit]) -> Result<Vec<Option<Scored>>> {
    let mut kl = vec![None; units.len()];
    if !trainer.loss.spec().needs_kl_batch {
        return Ok(kl);
    }
    let singles: Vec<(usize, &MaskedSequence)> = units
        .iter()
        .enumerate()
        .filter_map(|(k, unit)| match unit {
            Unit::Single { answer, .. } => Some((k, &answer.sequence)),
            Unit::Pair { .. } => None,
        })
        .collect();
    let answers: Vec<&MaskedSequence> = singles.iter().map(|(_, s)| *s).collect();
    let formed: Vec<(usize, MaskedSequence)> = singles
        .iter()
        .zip(kl_sequences(&answers))
        .filter_map(|((k, _), sequence)| sequence.map(|s| (*k, s)))
        .collect();
    let sequences: Vec<MaskedSequence> = formed.iter().map(|(_, s)| s.clone()).collect();
    let source = trainer.reference.as_deref_mut().ok_or_else(|| {
        Error::Usage(
            "the loss asks for a KL batch but training has no reference log-probs".to_owned(),
        )
    })?;
    let values = source.reference(&*trainer.decoder, &sequences, trainer.pad_id)?;
    for ((k, sequence), reference) in formed.into_iter().zip(values) {
        kl[k] = Some(Scored {
            sequence,
            reference,
        });
    }
    Ok(kl)
}

/// One forward, loss and backward over `units` of a client with `counts` (desirable,
/// undesirable) answers in all, with the micro-batch's KL sequences `kl`; gradients go into
/// `accumulator`.
pub(super) fn micro_batch(
    trainer: &LocalTrainer<'_>,
    units: &[&Unit],
    kl: &[&Scored],
    counts: (u64, u64),
    settings: &LocalSettings,
    accumulator: &mut GradAccumulator,
) -> Result<(LossOutput, usize)> {
    let (decoder, loss, pad_id) = (&*trainer.decoder, trainer.loss, trainer.pad_id);
    let mut sequences: Vec<&Scored> = Vec::new();
    let mut labels = Vec::new();
    let mut pair = Vec::new();
    for unit in units {
        match unit {
            Unit::Pair { chosen, rejected } => {
                let i = sequences.len() as i64;
                sequences.extend([chosen, rejected]);
                labels.extend([Label::Chosen, Label::Rejected]);
                pair.extend([i + 1, i]);
            }
            Unit::Single { answer, desirable } => {
                sequences.push(answer);
                labels.push(if *desirable {
                    Label::Chosen
                } else {
                    Label::Rejected
                });
                pair.push(-1);
            }
        }
    }
    let device = decoder.device().clone();
    let all_pairs = units.iter().all(|u| matches!(u, Unit::Pair { .. }));
    let policy = if settings.shared_prefix && all_pairs {
        // `sequences` holds each pair's chosen then rejected answer, the order packing keeps.
        let pairs: Vec<(&MaskedSequence, &MaskedSequence)> = sequences
            .chunks(2)
            .map(|p| (&p[0].sequence, &p[1].sequence))
            .collect();
        let batch = SequenceBatch::shared_prefix(&pairs, pad_id, decoder.device())?;
        sequence_logprobs(decoder, &batch)?.logp
    } else {
        logprobs_of(decoder, &sequences, pad_id)?
    };
    let policy_values: Vec<f32> = policy.to_dtype(DType::F32)?.to_vec1()?;
    let (kl_values, kl_dropout) = if kl.is_empty() {
        (Vec::new(), None)
    } else {
        kl_logprobs_detached(decoder, kl, pad_id)?
    };
    let reference: Vec<f32> = sequences.iter().map(|s| s.reference).collect();
    let kl_reference: Vec<f32> = kl.iter().map(|s| s.reference).collect();
    let n_tokens: Vec<u32> = sequences.iter().map(|s| s.n_tokens()).collect();
    let spec = loss.spec();
    let batch = LossBatch {
        logp_policy: policy_values.as_slice().into(),
        logp_ref: if spec.needs_reference {
            reference.as_slice().into()
        } else {
            Default::default()
        },
        n_tokens: n_tokens.as_slice().into(),
        labels: labels.as_slice().into(),
        pair: pair.as_slice().into(),
        kl_logp_policy: kl_values.as_slice().into(),
        kl_logp_ref: kl_reference.as_slice().into(),
        client_desirable: counts.0,
        client_undesirable: counts.1,
    };
    let output = loss.evaluate(&batch)?;
    let grad = Tensor::from_slice(output.grad_logp_policy.as_slice(), policy.dims(), &device)?
        .to_dtype(policy.dtype())?;
    let mut surrogate = (&policy * &grad)?.sum_all()?;
    if !kl.is_empty() && !output.grad_kl_logp_policy.is_empty() {
        // The loss wants the KL term's gradient: the same pass again, recorded this time, on
        // the same dropout masks (the generator rewound), so it gives the values the loss saw.
        if let (Some(state), Some(rng)) = (kl_dropout, decoder.ctx().dropout_rng) {
            *rng.lock().unwrap_or_else(|e| e.into_inner()) = state;
        }
        let kl_policy = logprobs_of(decoder, kl, pad_id)?;
        let kl_grad = Tensor::from_slice(
            output.grad_kl_logp_policy.as_slice(),
            kl_policy.dims(),
            &device,
        )?
        .to_dtype(kl_policy.dtype())?;
        surrogate = (surrogate + (kl_policy * kl_grad)?.sum_all()?)?;
    }
    accumulator.add(&decoder.backward(&surrogate)?)?;
    let tokens = sequences
        .iter()
        .chain(kl.iter())
        .map(|s| s.sequence.ids.len())
        .sum();
    Ok((output, tokens))
}

/// The KL batch's policy log-probs from a pass that records no autograd graph (KTO's KL term
/// carries no gradient, so nothing of the pass need be kept), with the dropout generator as it
/// was before the pass, for a loss that does ask for their gradient.
fn kl_logprobs_detached(
    decoder: &Decoder,
    kl: &[&Scored],
    pad_id: u32,
) -> Result<(Vec<f32>, Option<StdRng>)> {
    let ctx = decoder.ctx();
    let before = ctx
        .dropout_rng
        .map(|rng| rng.lock().unwrap_or_else(|e| e.into_inner()).clone());
    let sequences: Vec<MaskedSequence> = kl.iter().map(|s| s.sequence.clone()).collect();
    let batch = SequenceBatch::new(&sequences, pad_id, decoder.device())?;
    let detached = ForwardCtx {
        detached: true,
        ..ctx
    };
    let logp = sequence_logprobs_with(decoder, &batch, &detached)?.logp;
    Ok((logp.to_dtype(DType::F32)?.to_vec1()?, before))
}

fn logprobs_of(decoder: &Decoder, scored: &[&Scored], pad_id: u32) -> Result<Tensor> {
    let sequences: Vec<MaskedSequence> = scored.iter().map(|s| s.sequence.clone()).collect();
    let batch = SequenceBatch::new(&sequences, pad_id, decoder.device())?;
    Ok(sequence_logprobs(decoder, &batch)?.logp)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use candle_core::Device;
    use candle_nn::VarBuilder;
    use fedpref_model::{
        testing::{random_weights, tiny_config},
        Adapter, LoraConfig,
    };

    use super::*;
    use crate::plugin_host::test_plugins;

    /// A tiny decoder with an adapter (LoRA dropout 0.1).
    fn decoder() -> Decoder {
        decoder_with_dropout(0.1)
    }

    fn decoder_with_dropout(dropout: f64) -> Decoder {
        let cfg = tiny_config();
        let weights = random_weights(&cfg, 5, DType::F32);
        let mut decoder = Decoder::load(
            VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
            &cfg,
        )
        .expect("decoder");
        let lora = LoraConfig::new(2, 4.0, dropout, &["q_proj", "v_proj"]).expect("lora");
        let adapter = Adapter::new(&lora, &cfg, 9, DType::F32, &Device::Cpu).expect("adapter");
        decoder.attach_adapter(adapter).expect("attach");
        decoder
    }

    fn scored(ids: &[u32], answer_start: usize) -> Scored {
        Scored {
            sequence: MaskedSequence {
                ids: ids.to_vec(),
                answer_mask: (0..ids.len()).map(|i| i >= answer_start).collect(),
            },
            reference: -3.0,
        }
    }

    /// Four answers to four prompts: `[1, 3 + i]`, answer `[4, 5 + i]`.
    fn units() -> Vec<Unit> {
        (0..4u32)
            .map(|i| Unit::Single {
                answer: scored(&[1, 3 + i, 4, 5 + i], 2),
                desirable: i % 2 == 0,
            })
            .collect()
    }

    /// A reference source that answers -3 for every sequence and records what it was asked.
    #[derive(Default)]
    struct Recorder {
        asked: Vec<MaskedSequence>,
    }

    impl ReferenceSource for Recorder {
        fn reference(
            &mut self,
            _model: &Decoder,
            sequences: &[MaskedSequence],
            _pad_id: u32,
        ) -> Result<Vec<f32>> {
            self.asked.extend_from_slice(sequences);
            Ok(vec![-3.0; sequences.len()])
        }
    }

    fn settings(steps: u32) -> LocalSettings {
        LocalSettings {
            steps,
            batch_size: 2,
            grad_accum: 2,
            lr: 1e-2,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            seed: 11,
            deadline: None,
            fail_before_step: None,
            shared_prefix: true,
            example_privacy: None,
        }
    }

    fn train(settings: LocalSettings, stop: bool) -> (LocalOutcome, Vec<f32>) {
        let (outcome, global, _) = train_recording(settings, stop);
        (outcome, global)
    }

    /// [`train`], also returning the KL sequences whose reference log-probs it asked for.
    fn train_recording(
        settings: LocalSettings,
        stop: bool,
    ) -> (LocalOutcome, Vec<f32>, Vec<MaskedSequence>) {
        train_with_loss(settings, stop, serde_json::json!({}))
    }

    /// [`train_recording`] with these parameters of the `test-singles` loss.
    fn train_with_loss(
        settings: LocalSettings,
        stop: bool,
        params: serde_json::Value,
    ) -> (LocalOutcome, Vec<f32>, Vec<MaskedSequence>) {
        let mut recorder = Recorder::default();
        let host = test_plugins::host();
        let loss = host.loss("test-singles", &params).expect("loss");
        let mut decoder = decoder();
        let global = decoder.adapter().expect("adapter").flatten().expect("flat");
        let units = units();
        let plan = ClientPlan::plain();
        let job = LocalJob {
            round: 0,
            client: 1,
            units: &units,
            global: &global,
            plan: &plan,
            settings,
            optimizer: None,
        };
        let mut trainer = LocalTrainer {
            decoder: &mut decoder,
            loss: &loss,
            pad_id: 0,
            reference: Some(&mut recorder),
        };
        let outcome = train_client(&mut trainer, &job, &|| stop, &mut |_| {}).expect("train");
        (outcome, global, recorder.asked)
    }

    fn trained(outcome: LocalOutcome) -> (Vec<f32>, Vec<StepRecord>) {
        match outcome {
            LocalOutcome::Trained { params, steps, .. } => (params, steps),
            LocalOutcome::Dropped(d) => panic!("dropped: {d:?}"),
        }
    }

    #[test]
    fn pairs_train_the_same_with_and_without_a_shared_prefix() {
        // Three pairs: two prompts of their own, answers of several lengths. Without dropout
        // the packed rows must give the plain sequences' steps up to rounding.
        let pair = |prompt: &[u32], chosen: &[u32], rejected: &[u32]| Unit::Pair {
            chosen: scored(&[prompt, chosen].concat(), prompt.len()),
            rejected: scored(&[prompt, rejected].concat(), prompt.len()),
        };
        let units = [
            pair(&[1, 3, 4], &[5, 6, 7], &[8, 9]),
            pair(&[1, 2], &[10, 11], &[12, 13, 14, 15]),
            pair(&[1, 3, 4], &[9], &[5, 6]),
        ];
        let run = |shared_prefix: bool| {
            let host = test_plugins::host();
            let loss = host
                .loss("test-pairs", &serde_json::json!({}))
                .expect("loss");
            let mut decoder = decoder_with_dropout(0.0);
            let global = decoder.adapter().expect("adapter").flatten().expect("flat");
            let plan = ClientPlan::plain();
            let job = LocalJob {
                round: 0,
                client: 0,
                units: &units,
                global: &global,
                plan: &plan,
                settings: LocalSettings {
                    batch_size: 3,
                    grad_accum: 1,
                    shared_prefix,
                    ..settings(3)
                },
                optimizer: None,
            };
            let mut trainer = LocalTrainer {
                decoder: &mut decoder,
                loss: &loss,
                pad_id: 0,
                reference: None,
            };
            let outcome = train_client(&mut trainer, &job, &|| false, &mut |_| {}).expect("train");
            (trained(outcome), global)
        };
        let ((packed, packed_steps), global) = run(true);
        let ((plain, plain_steps), _) = run(false);
        for (a, b) in packed_steps.iter().zip(&plain_steps) {
            assert!((a.loss - b.loss).abs() < 1e-5, "{} vs {}", a.loss, b.loss);
        }
        let moved: f32 = plain
            .iter()
            .zip(&global)
            .map(|(p, g)| (p - g).abs())
            .fold(0.0, f32::max);
        let apart: f32 = plain
            .iter()
            .zip(&packed)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(moved > 1e-3, "training moved the adapter by {moved}");
        assert!(
            apart <= 1e-4 * moved,
            "packed and plain differ by {apart} (moved {moved})"
        );
    }

    #[test]
    fn a_loss_that_asks_for_the_kl_batchs_gradient_gets_it() {
        // The KL batch runs unrecorded; a loss returning its gradient has it run again,
        // recorded, on the same dropout masks: the update moves, and does so every time alike.
        let with_kl = |weight: f64| {
            let (outcome, _, _) = train_with_loss(
                settings(2),
                false,
                serde_json::json!({ "kl_weight": weight }),
            );
            trained(outcome)
        };
        let (plain, plain_steps) = with_kl(0.0);
        let (pulled, pulled_steps) = with_kl(5.0);
        let (again, again_steps) = with_kl(5.0);
        assert_eq!(pulled, again, "the same run twice");
        assert_eq!(
            pulled_steps.iter().map(|s| s.loss).collect::<Vec<_>>(),
            again_steps.iter().map(|s| s.loss).collect::<Vec<_>>()
        );
        let apart: f32 = plain
            .iter()
            .zip(&pulled)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            apart > 1e-4,
            "the KL term's gradient moved nothing: {apart}"
        );
        assert_ne!(plain_steps[0].loss, pulled_steps[0].loss);
    }

    #[test]
    fn training_moves_the_adapter_the_same_way_every_time() {
        let (first, global) = train(settings(2), false);
        let (params, steps) = trained(first);
        assert_eq!(steps.len(), 2);
        assert!(steps.iter().all(|s| s.client == 1 && s.tokens == 4 * 8));
        assert_ne!(params, global);
        let (again, _) = trained(train(settings(2), false).0);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&params), bits(&again));
        let (none, global) = train(settings(0), false);
        assert_eq!(bits(&trained(none).0), bits(&global));
    }

    #[test]
    fn each_steps_kl_batch_pairs_its_prompts_with_its_other_answers() {
        // Batch 2 x 2 micro-batches: every step draws all four units, so each step's KL batch
        // is the four prompts, each followed by one of the other three answers, every answer
        // once.
        let (outcome, _, asked) = train_recording(settings(2), false);
        trained(outcome);
        assert_eq!(asked.len(), 2 * 4, "four KL sequences per step");
        for step in asked.chunks(4) {
            let mut answers: Vec<u32> = step.iter().map(|s| s.ids[3]).collect();
            answers.sort_unstable();
            assert_eq!(answers, [5, 6, 7, 8], "each answer once: {step:?}");
            for s in step {
                assert_eq!(s.ids[2], 4, "an answer follows the prompt");
                assert_ne!(s.ids[3] - 5, s.ids[1] - 3, "never the prompt's own answer");
                assert_eq!(s.answer_mask, [false, false, true, true]);
            }
        }
    }

    #[test]
    fn faults_deadlines_and_stops_drop_the_client() {
        let failing = LocalSettings {
            fail_before_step: Some(1),
            ..settings(3)
        };
        assert!(matches!(
            train(failing, false).0,
            LocalOutcome::Dropped(Dropout::Failed { step: 1 })
        ));
        let late = LocalSettings {
            deadline: Some(Instant::now() - Duration::from_secs(1)),
            ..settings(3)
        };
        assert!(matches!(
            train(late, false).0,
            LocalOutcome::Dropped(Dropout::MissedDeadline { steps: 0 })
        ));
        assert!(matches!(
            train(settings(3), true).0,
            LocalOutcome::Dropped(Dropout::Interrupted)
        ));
    }
}

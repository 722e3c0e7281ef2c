//! Example-level DP-SGD (Abadi et al. 2016) for one client's optimizer step: each unit of the
//! client joins the step's batch independently with probability q (Poisson sampling, as the
//! accountant assumes), each sampled unit's gradient is computed on its own and clipped to L2
//! norm C, the clipped gradients are summed, Gaussian noise of standard deviation z·C is added
//! to every coordinate, and the sum is divided by the expected batch size q·n (the fixed
//! denominator: one example moves the result by at most C / qn, whoever else was sampled). The
//! optimizer then steps on that gradient as on any other.
//!
//! An example is one unit: a (chosen, rejected) pair for DPO, one labelled answer for KTO.
//! KTO's KL batch pairs each prompt with *another* example's answer and its mean, z0, shifts
//! every example's loss; a per-example gradient that depended on other examples would not be
//! bounded by clipping it, so under example-level DP each example is its own batch, no KL
//! sequence is formed, and z0 = 0. KTO's `desirable_weight = "auto"` reads the client's label
//! counts, which, like the client's number of examples, are treated as public.

use candle_core::{Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::local::{micro_batch, LocalSettings, LocalTrainer, StepGradient};
use super::optimizer::{global_norm, GradAccumulator};
use super::units::Unit;
use crate::{privacy::poisson_gaussian_epsilon, Error, Result};

/// Example-level DP-SGD settings of one client in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct ExamplePrivacy {
    /// C: the L2 bound on each example's gradient.
    pub clip_norm: f64,
    /// z: the noise's standard deviation over C.
    pub noise_multiplier: f64,
    /// q: each unit's chance of joining a step's batch, `min(1, batch / units)`.
    pub rate: f64,
    /// The fixed denominator q·n, the expected number of units per step.
    pub expected_batch: f64,
    /// Steps this client's data went through in earlier rounds, counted as if it took part in
    /// every one (so the ε reported bounds what it spent).
    pub steps_before: u64,
    /// The δ at which ε is reported.
    pub delta: f64,
}

/// What one DP-SGD step did, in its record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepPrivacy {
    /// Units the Poisson sample drew (possibly none: the noise is added all the same).
    pub examples: u32,
    /// Of those, gradients over the clip norm.
    pub clipped: u32,
    /// Mean norm of their gradients before clipping (0 without examples).
    pub mean_grad_norm: f64,
    /// ε spent by this client's data after this step, at the configured δ.
    pub epsilon: f64,
}

impl StepPrivacy {
    /// The steps' totals: examples and clipped summed, the norm averaged over examples, the
    /// largest ε; `None` for no steps.
    pub fn combine<'a>(steps: impl IntoIterator<Item = &'a StepPrivacy>) -> Option<StepPrivacy> {
        let mut total: Option<StepPrivacy> = None;
        for step in steps {
            let t = total.get_or_insert(StepPrivacy {
                examples: 0,
                clipped: 0,
                mean_grad_norm: 0.0,
                epsilon: 0.0,
            });
            let examples = t.examples + step.examples;
            if examples > 0 {
                t.mean_grad_norm = (t.mean_grad_norm * f64::from(t.examples)
                    + step.mean_grad_norm * f64::from(step.examples))
                    / f64::from(examples);
            }
            t.examples = examples;
            t.clipped += step.clipped;
            t.epsilon = t.epsilon.max(step.epsilon);
        }
        total
    }
}

/// The random streams of one client's private steps this round: which units each step
/// samples, and its noise. Both follow from the round's client seed, so a resumed run repeats
/// them.
pub(super) struct PrivateSteps<'a> {
    privacy: &'a ExamplePrivacy,
    sampler: ChaCha8Rng,
    noise: ChaCha8Rng,
}

impl<'a> PrivateSteps<'a> {
    pub(super) fn new(privacy: &'a ExamplePrivacy, seed: u64) -> Self {
        // Stream 0 of the seed orders the units of non-private training.
        let stream = |k| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(k);
            rng
        };
        Self {
            privacy,
            sampler: stream(1),
            noise: stream(2),
        }
    }

    /// Step `step`'s noised gradient (see the module docs) over a Poisson sample of `units`.
    ///
    /// # Errors
    /// Model and plugin errors, as the non-private step's.
    pub(super) fn gradient(
        &mut self,
        trainer: &LocalTrainer<'_>,
        (units, counts): (&[Unit], (u64, u64)),
        settings: &LocalSettings,
        vars: &[Var],
        step: u32,
    ) -> Result<StepGradient> {
        let privacy = self.privacy;
        let sampled: Vec<&Unit> = units
            .iter()
            .filter(|_| self.sampler.random::<f64>() < privacy.rate)
            .collect();
        let mut sum: Vec<Tensor> = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<_>>()?;
        let mut gradient = StepGradient::default();
        let (mut clipped, mut norms) = (0u32, 0f64);
        for unit in &sampled {
            let mut accumulator = GradAccumulator::new(vars.to_vec());
            let (output, tokens) =
                micro_batch(trainer, &[*unit], &[], counts, settings, &mut accumulator)?;
            let grads = accumulator.take_sum()?;
            let norm = global_norm(&grads)?;
            norms += norm;
            let scale = if norm > privacy.clip_norm {
                clipped += 1;
                privacy.clip_norm / norm
            } else {
                1.0
            };
            for (s, g) in sum.iter_mut().zip(grads) {
                *s = (&*s + (g * scale)?)?;
            }
            gradient.losses.push(output.loss);
            gradient.metrics.add(&output.metrics);
            gradient.tokens += tokens;
        }
        gradient.grads = self.add_noise(sum)?;
        let examples = sampled.len() as u32;
        let steps = privacy.steps_before + u64::from(step) + 1;
        gradient.privacy = Some(StepPrivacy {
            examples,
            clipped,
            mean_grad_norm: if examples > 0 {
                norms / f64::from(examples)
            } else {
                0.0
            },
            epsilon: poisson_gaussian_epsilon(
                privacy.rate,
                privacy.noise_multiplier,
                steps,
                privacy.delta,
            ),
        });
        Ok(gradient)
    }

    /// `(sum + N(0, (zC)²)) / qn`, coordinate by coordinate.
    fn add_noise(&mut self, sum: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let privacy = self.privacy;
        let std = privacy.noise_multiplier * privacy.clip_norm;
        let normal = Normal::new(0.0, std).map_err(|_| {
            Error::Usage(format!(
                "privacy.noise_multiplier x privacy.clip_norm = {std} is not a standard deviation"
            ))
        })?;
        sum.into_iter()
            .map(|s| {
                let noise: Vec<f32> = (0..s.elem_count())
                    .map(|_| normal.sample(&mut self.noise) as f32)
                    .collect();
                let noise = Tensor::from_vec(noise, s.dims(), s.device())?.to_dtype(s.dtype())?;
                Ok(((s + noise)? / privacy.expected_batch)?)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarBuilder;
    use fedpref_model::{
        logprobs::MaskedSequence,
        testing::{random_weights, tiny_config},
        Adapter, Decoder, LoraConfig,
    };

    use super::*;
    use crate::plugin_host::{test_plugins, LossHandle};
    use crate::train::local::step_gradient;
    use crate::train::units::{label_counts, Scored};

    /// A tiny decoder with an adapter and no dropout, so each pass gives the same gradient.
    fn decoder() -> Decoder {
        let cfg = tiny_config();
        let weights = random_weights(&cfg, 5, DType::F32);
        let mut decoder = Decoder::load(
            VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
            &cfg,
        )
        .expect("decoder");
        let lora = LoraConfig::new(2, 4.0, 0.0, &["q_proj", "v_proj"]).expect("lora");
        let adapter = Adapter::new(&lora, &cfg, 9, DType::F32, &Device::Cpu).expect("adapter");
        decoder.attach_adapter(adapter).expect("attach");
        // Nonzero B matrices, so the gradients of the A matrices are not all zero.
        let adapter = decoder.adapter().expect("adapter");
        let moved: Vec<f32> = (0..adapter.flatten().expect("flat").len())
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 4e-3)
            .collect();
        adapter.unflatten(&moved).expect("unflatten");
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

    /// Four pairs of answers of several lengths.
    fn pairs() -> Vec<Unit> {
        (0..4u32)
            .map(|i| Unit::Pair {
                chosen: scored(&[1, 3 + i, 4, 5 + i, 9], 2),
                rejected: scored(&[1, 3 + i, 6 + i, 2], 2),
            })
            .collect()
    }

    fn settings() -> LocalSettings {
        LocalSettings {
            steps: 1,
            batch_size: 1,
            grad_accum: 4,
            lr: 1e-2,
            max_grad_norm: 0.0,
            weight_decay: 0.0,
            seed: 11,
            deadline: None,
            fail_before_step: None,
            shared_prefix: false,
            example_privacy: None,
        }
    }

    /// Every unit each step, noise `z`, clip `clip`.
    fn privacy(clip_norm: f64, noise_multiplier: f64) -> ExamplePrivacy {
        ExamplePrivacy {
            clip_norm,
            noise_multiplier,
            rate: 1.0,
            expected_batch: 4.0,
            steps_before: 0,
            delta: 1e-5,
        }
    }

    fn flat(grads: &[Tensor]) -> Vec<f64> {
        grads
            .iter()
            .flat_map(|g| {
                g.flatten_all()
                    .and_then(|g| g.to_dtype(DType::F64))
                    .and_then(|g| g.to_vec1::<f64>())
                    .expect("values")
            })
            .collect()
    }

    /// The private gradient of `units` under `private`, and the loss it trained with.
    fn private_gradient(
        loss: &LossHandle,
        units: &[Unit],
        private: &ExamplePrivacy,
        steps: u32,
    ) -> Vec<StepGradient> {
        let mut decoder = decoder();
        let vars = decoder.adapter().expect("adapter").vars();
        let trainer = LocalTrainer {
            decoder: &mut decoder,
            loss,
            pad_id: 0,
            reference: None,
        };
        let mut steps_of = PrivateSteps::new(private, 11);
        (0..steps)
            .map(|step| {
                steps_of
                    .gradient(
                        &trainer,
                        (units, label_counts(units)),
                        &settings(),
                        &vars,
                        step,
                    )
                    .expect("private step")
            })
            .collect()
    }

    /// The plain step's gradient over `units`, one unit per micro-batch: their mean gradient.
    fn plain_gradient(loss: &LossHandle, units: &[&Unit]) -> Vec<f64> {
        let mut decoder = decoder();
        let vars = decoder.adapter().expect("adapter").vars();
        let mut trainer = LocalTrainer {
            decoder: &mut decoder,
            loss,
            pad_id: 0,
            reference: None,
        };
        let mut accumulator = GradAccumulator::new(vars);
        let counts = (units.len() as u64, units.len() as u64);
        let gradient = step_gradient(
            &mut trainer,
            units,
            (1, counts),
            &settings(),
            &mut accumulator,
        )
        .expect("step");
        flat(&gradient.grads)
    }

    fn norm(v: &[f64]) -> f64 {
        v.iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    #[test]
    fn without_clipping_or_noise_the_private_gradient_is_the_mean_gradient() {
        let host = test_plugins::host();
        let loss = host
            .loss("test-pairs", &serde_json::json!({}))
            .expect("loss");
        let units = pairs();
        let steps = private_gradient(&loss, &units, &privacy(1e9, 0.0), 1);
        let private = flat(&steps[0].grads);
        let plain = plain_gradient(&loss, &units.iter().collect::<Vec<_>>());
        assert!(
            norm(&plain) > 1e-4,
            "a gradient to compare: {}",
            norm(&plain)
        );
        let diff: Vec<f64> = private.iter().zip(&plain).map(|(a, b)| a - b).collect();
        assert!(
            norm(&diff) < 1e-5 * norm(&plain),
            "{} of {}",
            norm(&diff),
            norm(&plain)
        );
        let record = steps[0].privacy.expect("record");
        assert_eq!((record.examples, record.clipped), (4, 0));
    }

    #[test]
    fn each_examples_gradient_is_clipped_before_the_sum() {
        // Reference: each unit's own gradient, clipped in f64, summed, divided by qn = 4.
        let host = test_plugins::host();
        let loss = host
            .loss("test-pairs", &serde_json::json!({}))
            .expect("loss");
        let units = pairs();
        let own: Vec<Vec<f64>> = units.iter().map(|u| plain_gradient(&loss, &[u])).collect();
        let norms: Vec<f64> = own.iter().map(|g| norm(g)).collect();
        // A clip norm between the smallest and the largest: some clipped, some not.
        let mut sorted = norms.clone();
        sorted.sort_by(f64::total_cmp);
        let clip = (sorted[1] + sorted[2]) / 2.0;
        let mut expected = vec![0f64; own[0].len()];
        for (g, n) in own.iter().zip(&norms) {
            let scale = (clip / n).min(1.0);
            expected
                .iter_mut()
                .zip(g)
                .for_each(|(e, x)| *e += scale * x / 4.0);
        }
        let steps = private_gradient(&loss, &units, &privacy(clip, 0.0), 1);
        let private = flat(&steps[0].grads);
        let diff: Vec<f64> = private.iter().zip(&expected).map(|(a, b)| a - b).collect();
        assert!(
            norm(&diff) < 1e-5 * norm(&expected),
            "{} of {}",
            norm(&diff),
            norm(&expected)
        );
        let record = steps[0].privacy.expect("record");
        assert_eq!((record.examples, record.clipped), (4, 2));
        let mean_norm = norms.iter().sum::<f64>() / 4.0;
        assert!((record.mean_grad_norm - mean_norm).abs() < 1e-5 * mean_norm);
    }

    #[test]
    fn the_noise_has_standard_deviation_z_c_over_the_expected_batch() {
        // No unit is ever sampled (q = 1e-12), so each coordinate is N(0, (zC)²) / qn with the
        // denominator set to 2: standard deviation 1.5 × 0.4 / 2 = 0.3.
        let host = test_plugins::host();
        let loss = host
            .loss("test-pairs", &serde_json::json!({}))
            .expect("loss");
        let private = ExamplePrivacy {
            rate: 1e-12,
            expected_batch: 2.0,
            ..privacy(0.4, 1.5)
        };
        let steps = private_gradient(&loss, &pairs(), &private, 60);
        let values: Vec<f64> = steps.iter().flat_map(|s| flat(&s.grads)).collect();
        assert!(steps
            .iter()
            .all(|s| s.privacy.is_some_and(|p| p.examples == 0)));
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let sigma = 0.3;
        // Five standard errors: of the mean sigma / sqrt(n), of the std sigma / sqrt(2n).
        assert!(n > 10_000.0, "{n} samples");
        assert!(mean.abs() < 5.0 * sigma / n.sqrt(), "mean {mean}");
        assert!(
            (std - sigma).abs() < 5.0 * sigma / (2.0 * n).sqrt(),
            "std {std}"
        );
    }

    #[test]
    fn each_unit_joins_a_step_with_probability_q() {
        // 4 units at q = 0.5 over 100 steps: 200 expected, binomial sd 10.
        let host = test_plugins::host();
        let loss = host
            .loss("test-pairs", &serde_json::json!({}))
            .expect("loss");
        let private = ExamplePrivacy {
            rate: 0.5,
            expected_batch: 2.0,
            ..privacy(1.0, 1.0)
        };
        let steps = private_gradient(&loss, &pairs(), &private, 100);
        let drawn: u32 = steps
            .iter()
            .map(|s| s.privacy.expect("record").examples)
            .sum();
        assert!((150..=250).contains(&drawn), "{drawn} of 400 drawn");
        // The same seed draws the same samples and noise.
        let again = private_gradient(&loss, &pairs(), &private, 3);
        assert_eq!(flat(&again[2].grads), flat(&steps[2].grads));
    }

    #[test]
    fn epsilon_counts_the_steps_of_earlier_rounds() {
        let host = test_plugins::host();
        let loss = host
            .loss("test-pairs", &serde_json::json!({}))
            .expect("loss");
        let private = ExamplePrivacy {
            rate: 0.5,
            expected_batch: 2.0,
            steps_before: 10,
            ..privacy(1.0, 1.2)
        };
        let steps = private_gradient(&loss, &pairs(), &private, 2);
        let epsilon = |s: &StepGradient| s.privacy.expect("record").epsilon;
        assert_eq!(
            epsilon(&steps[1]),
            poisson_gaussian_epsilon(0.5, 1.2, 12, 1e-5)
        );
        assert!(epsilon(&steps[0]) < epsilon(&steps[1]));
    }

    #[test]
    fn a_kto_example_is_its_own_batch_without_a_kl_sequence() {
        // The singles loss asks for a KL batch; the private step forms none, so it needs no
        // reference source (the trainer has none) and each answer's gradient is its own.
        let host = test_plugins::host();
        let loss = host
            .loss("test-singles", &serde_json::json!({}))
            .expect("loss");
        let units: Vec<Unit> = (0..3u32)
            .map(|i| Unit::Single {
                answer: scored(&[1, 3 + i, 4, 5 + i], 2),
                desirable: i != 1,
            })
            .collect();
        let steps = private_gradient(&loss, &units, &privacy(1e9, 0.0), 1);
        assert_eq!(steps[0].privacy.expect("record").examples, 3);
        assert!(norm(&flat(&steps[0].grads)) > 0.0);
    }

    #[test]
    fn combining_steps_sums_counts_and_keeps_the_largest_epsilon() {
        let step = |examples, clipped, mean_grad_norm, epsilon| StepPrivacy {
            examples,
            clipped,
            mean_grad_norm,
            epsilon,
        };
        let total = StepPrivacy::combine(&[
            step(2, 1, 3.0, 0.5),
            step(0, 0, 0.0, 0.7),
            step(6, 2, 1.0, 0.6),
        ])
        .expect("steps");
        assert_eq!(total, step(8, 3, 1.5, 0.7));
        assert_eq!(StepPrivacy::combine(&[]), None);
    }
}

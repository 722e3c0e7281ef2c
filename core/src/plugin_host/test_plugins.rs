//! Small plugins the host's unit tests link in (one root module per test binary, so the real
//! plugin libraries, each exporting its own, cannot be linked together): a DPO-style loss
//! over pairs (also as one whose loss is NaN and one that always fails), a loss over single answers that asks for a KL batch (also as a loss on
//! redistributed answers), a weighted-mean aggregator with FedProx's plan and an optional weight
//! offset, a round-robin partitioner and an in-order stand-in for `redistribute`.

use fedpref_plugin_api::{
    math::{log_sigmoid, sigmoid},
    AggregationInput, AggregationOutput, AggregatorFunction, Assignment, ClientPlan, CodecFunction,
    CodecSpec, DataNeeds, Label, LossBatch, LossFunction, LossOutput, LossSpec, Metric, Params,
    PartitionInput, PartitionOutput, PartitionerFunction, Plugin, PluginError, View,
};

const BETA: f64 = 0.1;

/// `-log sigmoid(beta ((pi_c - ref_c) - (pi_r - ref_r)))`, averaged over pairs.
struct Pairs;

impl LossFunction for Pairs {
    fn spec(&self) -> LossSpec {
        LossSpec {
            data: DataNeeds::Paired,
            needs_reference: true,
            needs_kl_batch: false,
        }
    }

    fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput, PluginError> {
        let n = batch.len();
        let mut grad = vec![0f32; n];
        let (mut loss, mut margins, mut pairs) = (0f64, 0f64, 0f64);
        for i in (0..n).filter(|&i| batch.labels[i] == Label::Chosen) {
            let j = batch.pair[i] as usize;
            let ratio = |k: usize| f64::from(batch.logp_policy[k] - batch.logp_ref[k]);
            let margin = BETA * (ratio(i) - ratio(j));
            loss -= log_sigmoid(margin);
            grad[i] = (-BETA * sigmoid(-margin)) as f32;
            grad[j] = (BETA * sigmoid(-margin)) as f32;
            margins += margin;
            pairs += 1.0;
        }
        grad.iter_mut().for_each(|g| *g /= pairs as f32);
        Ok(LossOutput {
            loss: loss / pairs,
            grad_logp_policy: grad.into(),
            grad_kl_logp_policy: Default::default(),
            metrics: vec![Metric::new("rewards/margins", margins / pairs)].into(),
        })
    }
}

/// [`Pairs`] whose loss is always NaN: a client whose training diverged.
struct NotANumber;

impl LossFunction for NotANumber {
    fn spec(&self) -> LossSpec {
        Pairs.spec()
    }

    fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput, PluginError> {
        let mut output = Pairs.evaluate(batch)?;
        output.loss = f64::NAN;
        Ok(output)
    }
}

/// [`Pairs`] that fails on every batch: a loss plugin that errors on a client's data.
struct Failing;

impl LossFunction for Failing {
    fn spec(&self) -> LossSpec {
        Pairs.spec()
    }

    fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput, PluginError> {
        Err(PluginError::failed(format!(
            "deliberate failure on a batch of {}",
            batch.len()
        )))
    }
}

/// `-s beta (pi - ref)` per answer (`s = +1` desirable, `-1` not), averaged; asks for a KL batch
/// it gives no gradient. Trains on answers split inside clients or redistributed across them.
struct Singles {
    data: DataNeeds,
    /// Weight of a term `kl_weight * mean(kl_logp_policy)` whose gradient flows into the KL
    /// batch (0: none, as KTO's).
    kl_weight: f64,
}

impl Singles {
    fn spec_of(data: DataNeeds) -> LossSpec {
        Singles {
            data,
            kl_weight: 0.0,
        }
        .spec()
    }
}

impl LossFunction for Singles {
    fn spec(&self) -> LossSpec {
        LossSpec {
            data: self.data,
            needs_reference: true,
            needs_kl_batch: true,
        }
    }

    fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput, PluginError> {
        let n = batch.len() as f64;
        let sign = |l: Label| if l == Label::Chosen { 1.0 } else { -1.0 };
        let loss = (0..batch.len())
            .map(|i| {
                -sign(batch.labels[i]) * BETA * f64::from(batch.logp_policy[i] - batch.logp_ref[i])
            })
            .sum::<f64>()
            / n;
        let n_kl = batch.kl_logp_policy.len();
        let (kl_term, grad_kl) = if self.kl_weight == 0.0 || n_kl == 0 {
            (0.0, Default::default())
        } else {
            let mean = batch
                .kl_logp_policy
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / n_kl as f64;
            let grad = vec![(self.kl_weight / n_kl as f64) as f32; n_kl];
            (self.kl_weight * mean, grad.into())
        };
        Ok(LossOutput {
            loss: loss + kl_term,
            grad_logp_policy: batch
                .labels
                .iter()
                .map(|&l| (-sign(l) * BETA / n) as f32)
                .collect(),
            grad_kl_logp_policy: grad_kl,
            metrics: Default::default(),
        })
    }
}

/// The mean of the updates weighted by example counts; `mu` is sent as FedProx's plan and
/// `weight_offset`, when not 0, as a weight offset of that value in every entry.
struct WeightedMean {
    mu: f32,
    weight_offset: f32,
}

impl AggregatorFunction for WeightedMean {
    fn client_plan(&self, _client: u32, global: &[f32]) -> Result<ClientPlan, PluginError> {
        let weight_offset = if self.weight_offset == 0.0 {
            Vec::new()
        } else {
            vec![self.weight_offset; global.len()]
        };
        Ok(ClientPlan {
            prox_mu: self.mu,
            weight_offset: weight_offset.into(),
            ..ClientPlan::plain()
        })
    }

    fn aggregate(
        &mut self,
        input: &AggregationInput<'_>,
    ) -> Result<AggregationOutput, PluginError> {
        input.validate("test-mean")?;
        let total: f64 = input.updates.iter().map(|u| u.n_examples as f64).sum();
        let global = (0..input.global.len())
            .map(|j| {
                let sum: f64 = input
                    .updates
                    .iter()
                    .map(|u| u.n_examples as f64 * f64::from(u.params[j]))
                    .sum();
                (sum / total) as f32
            })
            .collect();
        Ok(AggregationOutput {
            global,
            metrics: vec![Metric::new("clients", input.updates.len() as f64)].into(),
        })
    }

    fn save_state(&self) -> Result<Vec<u8>, PluginError> {
        Ok(b"stateless".to_vec())
    }

    fn load_state(&mut self, _state: &[u8]) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Every answer of every pair, in order, cut into runs of the host's `client_sizes` (equal
/// runs without them): the shape of `redistribute`, without its shuffle.
struct InOrder;

impl PartitionerFunction for InOrder {
    fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput, PluginError> {
        let answers: Vec<Assignment> = input
            .examples
            .iter()
            .flat_map(|m| {
                [View::Chosen, View::Rejected].map(|view| Assignment {
                    example: m.index,
                    view,
                })
            })
            .collect();
        let sizes: Vec<usize> = if input.client_sizes.is_empty() {
            let (n, k) = (answers.len(), input.n_clients as usize);
            (0..k).map(|c| n / k + usize::from(c < n % k)).collect()
        } else {
            input.client_sizes.iter().map(|&s| s as usize).collect()
        };
        let mut rest = answers.into_iter();
        let clients = sizes
            .iter()
            .map(|&s| rest.by_ref().take(s).collect::<Vec<_>>().into())
            .collect();
        Ok(PartitionOutput {
            clients,
            metrics: Default::default(),
        })
    }
}

/// Example `i` to client `i % n`, whole.
struct RoundRobin;

impl PartitionerFunction for RoundRobin {
    fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput, PluginError> {
        let mut clients = vec![Vec::new(); input.n_clients as usize];
        for meta in input.examples.iter() {
            clients[(meta.index % u64::from(input.n_clients)) as usize].push(Assignment {
                example: meta.index,
                view: View::Whole,
            });
        }
        Ok(PartitionOutput {
            clients: clients.into_iter().map(Into::into).collect(),
            metrics: Default::default(),
        })
    }
}

/// Keeps the one value of largest magnitude, as (u32 index, f32 value): a biased codec.
/// `lie = true` claims a size one byte off its encodings'.
struct TopOne {
    lie: bool,
}

impl CodecFunction for TopOne {
    fn spec(&self) -> CodecSpec {
        CodecSpec {
            lossless: false,
            unbiased: false,
        }
    }

    fn encoded_len(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            8 + u64::from(self.lie)
        }
    }

    fn encode(&self, values: &[f32], _seed: u64) -> Result<Vec<u8>, PluginError> {
        let Some(top) = (0..values.len())
            .max_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()).then(b.cmp(&a)))
        else {
            return Ok(Vec::new());
        };
        let mut bytes = (top as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&values[top].to_le_bytes());
        Ok(bytes)
    }

    fn decode(&self, bytes: &[u8], n: u64, _seed: u64) -> Result<Vec<f32>, PluginError> {
        let mut values = vec![0f32; n as usize];
        if let [a, b, c, d, e, f, g, h] = *bytes {
            values[u32::from_le_bytes([a, b, c, d]) as usize] = f32::from_le_bytes([e, f, g, h]);
        }
        Ok(values)
    }
}

fn plugin() -> Plugin {
    let no_params = |params: &Params| params.finish();
    Plugin::new("fedpref-test-plugins", "0.1.0")
        .loss("test-pairs", "DPO's sigmoid loss", Pairs.spec(), move |p| {
            no_params(p).map(|()| Pairs)
        })
        .loss(
            "test-nan",
            "a loss that always comes out NaN",
            Pairs.spec(),
            move |p| no_params(p).map(|()| NotANumber),
        )
        .loss(
            "test-failing",
            "a loss that fails on every batch",
            Pairs.spec(),
            move |p| no_params(p).map(|()| Failing),
        )
        .loss(
            "test-singles",
            "a linear loss over labelled answers (plus `kl_weight` times the KL batch's mean)",
            Singles::spec_of(DataNeeds::Unpaired),
            move |p| {
                let kl_weight = p.f64_or("kl_weight", 0.0)?;
                p.finish()?;
                Ok(Singles {
                    data: DataNeeds::Unpaired,
                    kl_weight,
                })
            },
        )
        .aggregator("test-mean", "weighted mean, FedProx plan", |p| {
            let mu = p.f64_or("mu", 0.0)? as f32;
            let weight_offset = p.f64_or("weight_offset", 0.0)? as f32;
            p.finish()?;
            Ok(WeightedMean { mu, weight_offset })
        })
        .loss(
            "test-redistributed",
            "the linear loss over answers redistributed across clients",
            Singles::spec_of(DataNeeds::Redistributed),
            move |p| {
                no_params(p).map(|()| Singles {
                    data: DataNeeds::Redistributed,
                    kl_weight: 0.0,
                })
            },
        )
        .codec(
            "test-top-1",
            "the largest magnitude and its index",
            move |p| no_params(p).map(|()| TopOne { lie: false }),
        )
        .codec(
            "test-liar",
            "top-1, claiming a size one byte off",
            move |p| no_params(p).map(|()| TopOne { lie: true }),
        )
        .partitioner("test-round-robin", "example i to client i % n", move |p| {
            no_params(p).map(|()| RoundRobin)
        })
        .partitioner(
            "redistribute",
            "answers in order, in runs of the sizes",
            |p| {
                // The real rule's parameter, read so that a config may set it.
                let _ = p.choice("sizes", &["keep", "equal"], "keep")?;
                p.finish()?;
                Ok(InOrder)
            },
        )
}

fedpref_plugin_api::export_plugin!(plugin);

/// A host holding only these plugins.
pub fn host() -> super::PluginHost {
    super::PluginHost::builder()
        .linked("test plugins", fedpref_root_module())
        .load()
        .expect("the test plugins load")
}

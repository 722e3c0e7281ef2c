//! Activation checkpointing per decoder layer: the forward pass keeps only each layer's input,
//! and the backward pass runs the layer again, with a graph, to differentiate it.
//!
//! [`checkpointed_forward`] runs the layer without a graph and attaches its output to the
//! input and to one of the layer's LoRA vars (the anchor that keeps the op in the graph even
//! when the input carries no gradient, as the embedding's output does not). Its backward
//! returns the input's and the anchor's gradients and leaves the layer's other LoRA gradients
//! in a [`CheckpointGrads`] sink, which [`crate::Decoder::backward`] adds into the gradient
//! store. The replay draws the same LoRA dropout masks: the host generator's state is saved
//! before the layer, and on a GPU the device generator is seeded from it before the layer and
//! again before the replay.

use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use rand::rngs::StdRng;
use rand::Rng;

use crate::kernels::attach::{attach, Backward};
use crate::layers::context::{ForwardCtx, Packing};
use crate::layers::layer::DecoderLayer;
use crate::layers::rope::Rope;
use crate::Result;

/// Gradients of LoRA vars found while replaying checkpointed layers, waiting to be added to
/// the gradient store of the backward pass that found them.
#[derive(Debug, Default)]
pub struct CheckpointGrads(Mutex<Vec<(Var, Tensor)>>);

impl CheckpointGrads {
    fn push(&self, var: Var, grad: Tensor) {
        self.lock().push((var, grad));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Var, Tensor)>> {
        // A poisoned lock means a replay panicked; its partial list is still a list.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets gradients left by a backward pass that failed part way.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Adds every waiting gradient into `store` and empties the sink.
    ///
    /// # Errors
    /// Tensor errors (shape mismatch).
    pub fn drain_into(&self, store: &mut GradStore) -> Result<()> {
        for (var, grad) in self.lock().drain(..) {
            let sum = match store.remove(var.as_tensor()) {
                Some(earlier) => (earlier + grad)?,
                None => grad,
            };
            store.insert(var.as_tensor(), sum);
        }
        Ok(())
    }
}

/// The layer's forward pass as [`DecoderLayer::forward`] gives it (no cache, no left padding),
/// keeping only `x` for backward. `vars` are the layer's LoRA vars (empty: nothing of the
/// layer trains).
///
/// # Errors
/// Tensor errors.
pub fn checkpointed_forward(
    layer: &DecoderLayer,
    x: &Tensor,
    rope: &Rope,
    ctx: &ForwardCtx,
    vars: Vec<Var>,
    sink: &Arc<CheckpointGrads>,
) -> Result<Tensor> {
    let device_seed = match (ctx.dropout_rng, x.device().is_cpu()) {
        (Some(rng), false) => Some(
            rng.lock()
                .unwrap_or_else(|e| e.into_inner())
                .random::<u64>(),
        ),
        _ => None,
    };
    let rng = ctx
        .dropout_rng
        .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone());
    if let Some(seed) = device_seed {
        x.device().set_seed(seed)?;
    }
    let detached = ForwardCtx {
        detached: true,
        ..*ctx
    };
    let y = layer.forward(&x.detach(), rope, 0, None, &detached)?;
    let Some(anchor) = vars.first().cloned() else {
        return Ok(y);
    };
    let replay = Replay {
        input_tracked: x.track_op(),
        layer: layer.clone(),
        rope: rope.clone(),
        adapter: ctx.adapter,
        packing: ctx.packing.cloned(),
        rng,
        device_seed,
        vars,
        sink: Arc::clone(sink),
    };
    attach(&[x, anchor.as_tensor()], y, replay)
}

/// What the backward pass needs to run the layer again exactly as the forward pass did.
struct Replay {
    /// Whether the input carries a gradient (the first layer's, the embedding's output, does
    /// not: its gradient would only take memory).
    input_tracked: bool,
    layer: DecoderLayer,
    rope: Rope,
    adapter: bool,
    packing: Option<Packing>,
    /// The dropout generator as it was before the layer.
    rng: Option<StdRng>,
    device_seed: Option<u64>,
    vars: Vec<Var>,
    sink: Arc<CheckpointGrads>,
}

impl Backward for Replay {
    fn name(&self) -> &'static str {
        "checkpointed-layer"
    }

    fn backward(
        &self,
        inputs: &[&Tensor],
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Vec<Option<Tensor>>> {
        let x = Var::from_tensor(&inputs[0].detach())?;
        if let Some(seed) = self.device_seed {
            x.device().set_seed(seed)?;
        }
        let rng = self.rng.clone().map(Mutex::new);
        let ctx = ForwardCtx {
            adapter: self.adapter,
            dropout_rng: rng.as_ref(),
            left_pads: None,
            packing: self.packing.as_ref(),
            detached: false,
        };
        let y = self
            .layer
            .forward(&x, &self.rope, 0, None, &ctx)
            .map_err(candle_core::Error::wrap)?;
        let store = (y * grad.detach())?.sum_all()?.backward()?;
        let mut vars = self.vars.iter();
        let anchor = vars.next().and_then(|a| store.get(a).cloned());
        for var in vars {
            if let Some(g) = store.get(var) {
                self.sink.push(var.clone(), g.clone());
            }
        }
        let dx = store.get(&x).filter(|_| self.input_tracked).cloned();
        Ok(vec![dx, anchor])
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use crate::logprobs::{sequence_logprobs, MaskedSequence, SequenceBatch};
    use crate::testing::{max_diff, random_weights, tiny_config};
    use crate::{Adapter, Decoder, LoraConfig, MemoryOptions};

    /// A tiny model with LoRA dropout on every attention projection and a non-zero `B`.
    fn model(checkpoint: bool) -> Decoder {
        let cfg = tiny_config();
        let vb = candle_nn::VarBuilder::from_tensors(
            random_weights(&cfg, 21, DType::F32),
            DType::F32,
            &Device::Cpu,
        );
        let mut model = Decoder::load(vb, &cfg).unwrap();
        let lora = LoraConfig::new(4, 8.0, 0.2, &["q_proj", "v_proj", "o_proj"]).unwrap();
        let adapter = Adapter::new(&lora, &cfg, 2, DType::F32, &Device::Cpu).unwrap();
        let n = adapter.num_params();
        let flat: Vec<f32> = (0..n)
            .map(|i| ((i * 31) % 17) as f32 / 40.0 - 0.2)
            .collect();
        adapter.unflatten(&flat).unwrap();
        model.attach_adapter(adapter).unwrap();
        model.set_training(Some(5)).unwrap();
        // The checkpointed model also runs the head in chunks of 4 answer tokens.
        model.set_memory_options(MemoryOptions {
            checkpoint_layers: checkpoint,
            head_chunk: if checkpoint { 4 } else { 1024 },
        });
        model
    }

    fn sequence(ids: &[u32], prompt: usize) -> MaskedSequence {
        MaskedSequence {
            ids: ids.to_vec(),
            answer_mask: (0..ids.len()).map(|t| t >= prompt).collect(),
        }
    }

    /// Two steps' log-probs and adapter gradients, plain and shared-prefix batches.
    fn two_steps(model: &Decoder) -> Vec<(Vec<f32>, Vec<candle_core::Tensor>)> {
        let a = sequence(&[1, 5, 9, 3, 7, 11, 12], 4);
        let b = sequence(&[1, 5, 9, 3, 20, 21], 4);
        let c = sequence(&[4, 6, 30, 31, 17], 2);
        let plain = SequenceBatch::new(&[a.clone(), b.clone(), c], 0, &Device::Cpu).unwrap();
        let packed = SequenceBatch::shared_prefix(&[(&a, &b)], 0, &Device::Cpu).unwrap();
        [plain, packed]
            .iter()
            .map(|batch| {
                let logp = sequence_logprobs(model, batch).unwrap().logp;
                let grads = model
                    .backward(&(logp.sum_all().unwrap() * 0.5).unwrap())
                    .unwrap();
                let vars = model.adapter().unwrap().vars();
                let grads = vars
                    .iter()
                    .map(|v| grads.get(v).expect("every LoRA var has a gradient").clone())
                    .collect();
                (logp.to_vec1().unwrap(), grads)
            })
            .collect()
    }

    #[test]
    fn checkpointed_layers_give_the_same_log_probs_and_gradients_with_dropout() {
        let plain = two_steps(&model(false));
        let checkpointed = two_steps(&model(true));
        for ((lp, gp), (lc, gc)) in plain.iter().zip(&checkpointed) {
            // The same masks and the same ops: the values are bit for bit those of the
            // uncheckpointed pass; the gradients differ only by the order of summation.
            assert_eq!(lp, lc);
            for (p, c) in gp.iter().zip(gc) {
                let scale = p
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(scale > 0.0);
                let d = max_diff(p, c);
                assert!(d <= 1e-5 * f64::from(scale), "{d} vs {scale}");
            }
        }
    }

    #[test]
    fn base_passes_equal_the_uncheckpointed_ones() {
        let batch = SequenceBatch::new(&[sequence(&[1, 2, 3, 4, 9], 1)], 0, &Device::Cpu).unwrap();
        let mut m = model(true);
        let checkpointed = crate::reference_logprobs(&m, &batch).unwrap();
        m.set_memory_options(MemoryOptions::default());
        assert_eq!(checkpointed, crate::reference_logprobs(&m, &batch).unwrap());
    }
}

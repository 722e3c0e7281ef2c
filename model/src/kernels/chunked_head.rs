//! Answer-token log-probs from hidden states without the whole `(tokens, vocab)` logit block:
//! `log_softmax(h W^T)[target]` per row, `hidden` `(n, h)`, the frozen head `W` `(vocab, h)`,
//! `targets` `(n,)` -> `(n,)`.
//!
//! [`head_log_softmax_chunked`] runs the head and log-softmax on `chunk` rows at a time
//! without a graph, so the forward pass keeps no logits; its backward recomputes each chunk
//! with a graph and differentiates it (the idea of Liger Kernel's fused linear cross-entropy
//! and of cut cross-entropy). Peak memory for the head is one chunk's logits and their
//! gradient, whatever the batch, sequence or vocabulary; the price is one more head matmul per
//! step. [`head_log_softmax_plain`] is the twin: the whole block at once, as the chunks are.

use candle_core::{DType, Tensor, Var};

use crate::kernels::attach::{attach, Backward};
use crate::kernels::cpu::log_softmax::gather_log_softmax_fused;
use crate::kernels::frozen_matmul::frozen_matmul;
use crate::{Error, Result};

/// Rows of the head computed at once by default: 1024 rows of a 151,936-token vocabulary are
/// 0.6 GB of f32 logits; a batch with fewer answer tokens runs as one chunk.
pub const DEFAULT_HEAD_CHUNK: usize = 1024;

/// Logits in the precision the log-softmax runs in: f32, or f64 for an f64 model.
fn upcast(logits: Tensor) -> Result<Tensor> {
    Ok(match logits.dtype() {
        DType::F64 | DType::F32 => logits,
        _ => logits.to_dtype(DType::F32)?,
    })
}

/// `log_softmax(logits)[target]` per row, `logits` `(n, vocab)`, `targets` `(n,)`; half
/// precision is upcast to f32 first.
///
/// # Errors
/// Shape mismatch, a target outside the vocabulary.
pub fn gather_log_softmax(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    gather_log_softmax_fused(&upcast(logits.clone())?, targets)
}

/// The twin: the head over all rows, then the log-softmax.
///
/// # Errors
/// Shape mismatch, a target outside the vocabulary.
pub fn head_log_softmax_plain(hidden: &Tensor, w: &Tensor, targets: &Tensor) -> Result<Tensor> {
    gather_log_softmax(&frozen_matmul(hidden, w)?, targets)
}

/// [`head_log_softmax_plain`] by chunks of `chunk` rows, keeping no logits for backward; one
/// chunk (`n <= chunk`) is the twin itself.
///
/// # Errors
/// Shape mismatch, a target outside the vocabulary, a zero `chunk`.
pub fn head_log_softmax_chunked(
    hidden: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    chunk: usize,
) -> Result<Tensor> {
    let (n, _) = hidden.dims2()?;
    if chunk == 0 {
        return Err(Error::Usage(
            "the head's chunk must hold at least one row".into(),
        ));
    }
    if n <= chunk {
        return head_log_softmax_plain(hidden, w, targets);
    }
    let targets = targets.to_dtype(DType::U32)?;
    let detached = hidden.detach();
    let values = (0..n)
        .step_by(chunk)
        .map(|r| {
            let len = chunk.min(n - r);
            head_log_softmax_plain(&detached.narrow(0, r, len)?, w, &targets.narrow(0, r, len)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let backward = ChunkedHead {
        w: w.clone(),
        targets,
        chunk,
    };
    attach(&[hidden], Tensor::cat(&values, 0)?, backward)
}

/// Recomputes each chunk with a graph in backward.
struct ChunkedHead {
    w: Tensor,
    targets: Tensor,
    chunk: usize,
}

impl Backward for ChunkedHead {
    fn name(&self) -> &'static str {
        "chunked-head-log-softmax"
    }

    fn backward(
        &self,
        inputs: &[&Tensor],
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Vec<Option<Tensor>>> {
        let hidden = inputs[0].detach();
        let n = hidden.dim(0)?;
        let mut grads = Vec::with_capacity(n.div_ceil(self.chunk));
        for r in (0..n).step_by(self.chunk) {
            let len = self.chunk.min(n - r);
            let h = Var::from_tensor(&hidden.narrow(0, r, len)?)?;
            let y = head_log_softmax_plain(&h, &self.w, &self.targets.narrow(0, r, len)?)
                .map_err(candle_core::Error::wrap)?;
            let g = grad.narrow(0, r, len)?.to_dtype(y.dtype())?;
            let store = (y * g)?.sum_all()?.backward()?;
            let dh = match store.get(&h) {
                Some(dh) => dh.clone(),
                None => h.zeros_like()?,
            };
            grads.push(dh);
        }
        Ok(vec![Some(Tensor::cat(&grads, 0)?)])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::Device;

    use super::*;
    use crate::testing::max_diff;

    /// Forward values and input gradients (weighted by `probe`) of both forms on `device`.
    pub(crate) fn chunked_against_twin(device: &Device, dtype: DType) -> (f64, f64, f64) {
        let (n, h, vocab) = (37, 16, 50);
        let w = Tensor::randn(0f32, 1.0, (vocab, h), device)
            .and_then(|t| t.to_dtype(dtype))
            .unwrap();
        let x = Var::from_tensor(
            &Tensor::randn(0f32, 1.0, (n, h), device)
                .and_then(|t| t.to_dtype(dtype))
                .unwrap(),
        )
        .unwrap();
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 7) % vocab as u32).collect();
        let targets = Tensor::new(targets.as_slice(), device).unwrap();
        let probe: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = |chunked: bool| {
            let y = if chunked {
                head_log_softmax_chunked(&x, &w, &targets, 8).unwrap()
            } else {
                head_log_softmax_plain(&x, &w, &targets).unwrap()
            };
            let p = Tensor::new(probe.as_slice(), device)
                .unwrap()
                .to_dtype(y.dtype())
                .unwrap();
            let g = (&y * p).unwrap().sum_all().unwrap().backward().unwrap();
            (y, g.get(&x).unwrap().clone())
        };
        let (y_chunked, g_chunked) = run(true);
        let (y_plain, g_plain) = run(false);
        let scale = g_plain.abs().unwrap().max_all().unwrap();
        let scale = scale
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        (
            max_diff(&y_chunked, &y_plain),
            max_diff(&g_chunked, &g_plain),
            scale,
        )
    }

    #[test]
    fn chunked_head_equals_the_twin_forward_and_gradient() {
        // f32: the same products summed in the same order per row, up to the gemm's blocking;
        // f64 to rounding.
        for (dtype, tol) in [(DType::F32, 1e-5), (DType::F64, 1e-12)] {
            let (dy, dg, scale) = chunked_against_twin(&Device::Cpu, dtype);
            assert!(dy < tol, "{dtype:?}: values differ by {dy}");
            assert!(
                dg < tol * scale.max(1.0),
                "{dtype:?}: gradients differ by {dg}"
            );
        }
    }

    #[test]
    fn one_chunk_is_the_twin_and_a_zero_chunk_or_bad_target_is_an_error() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (5, 3), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (4, 3), &dev).unwrap();
        let t = Tensor::new(&[0u32, 1, 2, 4], &dev).unwrap();
        let one = head_log_softmax_chunked(&x, &w, &t, 4).unwrap();
        let twin = head_log_softmax_plain(&x, &w, &t).unwrap();
        assert_eq!(max_diff(&one, &twin), 0.0);
        assert!(head_log_softmax_chunked(&x, &w, &t, 0).is_err());
        let bad = Tensor::new(&[0u32, 1, 2, 5], &dev).unwrap();
        assert!(head_log_softmax_chunked(&x, &w, &bad, 2).is_err());
    }
}

//! Softmax-shaped ops for non-CPU devices: the forward pass without an autograd graph (one
//! fused kernel, or composed ops whose intermediates are freed at once), with a hand-written
//! backward attached by [`attach`].
//!
//! On a GPU the composed twins (max, sub, exp, sum, div and their backward ops over every
//! element) were most of a LoRA step's time and memory at 16 x 512 tokens: the attention
//! probabilities and the `(tokens, vocab)` logits are the largest tensors of the step, and
//! each composed op both launches a kernel and keeps its output for backward. Here the
//! backward keeps only the input and the output:
//! - [`softmax_last_dim`]: candle-nn's fused softmax kernel (it accumulates half precision in
//!   f32), backward `dx = y (dy - sum(dy y))`;
//! - [`gather_log_softmax`]: `log_softmax(logits)[target]` per row, backward
//!   `dlogits = dy (onehot(target) - softmax(logits))`.
//!
//! Both run on the CPU too (tests compare them with the composed twins there); the CPU
//! training path uses the fused CPU ops of `fused_attention` and `fused_log_softmax` instead.

use candle_core::{DType, Tensor, D};

use crate::kernels::attach::{attach, Backward};
use crate::Result;

/// `dx = y (dy - sum(dy y))` for `y = softmax(x)` over the last dim.
struct SoftmaxBackward;

impl Backward for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn backward(
        &self,
        _: &[&Tensor],
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<Vec<Option<Tensor>>> {
        let dot = (dy * y)?.sum_keepdim(D::Minus1)?;
        Ok(vec![Some((y * dy.broadcast_sub(&dot)?)?)])
    }
}

/// `dlogits = dy (onehot(target) - softmax(logits))` for `y[i] = log_softmax(x[i])[targets[i]]`.
struct GatherLogSoftmaxBackward {
    /// `(n, 1)` u32.
    targets: Tensor,
}

impl Backward for GatherLogSoftmaxBackward {
    fn name(&self) -> &'static str {
        "gather-log-softmax"
    }

    fn backward(
        &self,
        inputs: &[&Tensor],
        _: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<Vec<Option<Tensor>>> {
        let p = candle_nn::ops::softmax_last_dim(&inputs[0].detach())?;
        let dy = dy.unsqueeze(1)?.to_dtype(p.dtype())?;
        let minus = p.broadcast_mul(&dy.neg()?)?;
        Ok(vec![Some(minus.scatter_add(&self.targets, &dy, 1)?)])
    }
}

/// Softmax over the last dimension with a backward pass; `x` contiguous after this call.
///
/// # Errors
/// Tensor errors.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let y = candle_nn::ops::softmax_last_dim(&x.detach())?;
    attach(&[&x], y, SoftmaxBackward)
}

/// `log_softmax(logits)[target]` per row: `logits` `(n, vocab)` (f32 or f64), `targets` `(n,)`
/// u32 -> `(n,)`, with a backward pass to `logits`.
///
/// # Errors
/// Tensor errors.
pub fn gather_log_softmax(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let x = logits.contiguous()?.detach();
    let max = x.max_keepdim(D::Minus1)?;
    let lse = (x
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + &max)?;
    let targets = targets.to_dtype(DType::U32)?.unsqueeze(1)?.contiguous()?;
    let y = (x.gather(&targets, 1)? - lse)?.squeeze(1)?;
    attach(
        &[&logits.contiguous()?],
        y,
        GatherLogSoftmaxBackward { targets },
    )
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::kernels::cpu::log_softmax::gather_log_softmax_plain;
    use crate::testing::max_diff;

    /// Composed softmax (the twin): its autograd gives the reference gradient.
    fn softmax_plain(x: &Tensor) -> Tensor {
        let max = x.max_keepdim(D::Minus1).unwrap().detach();
        let e = x.broadcast_sub(&max).unwrap().exp().unwrap();
        e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
    }

    #[test]
    fn softmax_and_its_gradient_equal_the_composed_twin() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f64, 3.0, (3, 4, 7), &dev).unwrap())).unwrap();
        let w = Tensor::randn(0f64, 1.0, (3, 4, 7), &dev).unwrap();
        let ours = softmax_last_dim(x.as_tensor()).unwrap();
        let twin = softmax_plain(x.as_tensor());
        assert!(max_diff(&ours, &twin) < 1e-12);
        let g_ours = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_twin = (twin * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (g_ours.get(&x).unwrap(), g_twin.get(&x).unwrap());
        assert!(max_diff(a, b) < 1e-12, "{}", max_diff(a, b));
    }

    #[test]
    fn gather_log_softmax_and_its_gradient_equal_the_composed_twin() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f64, 4.0, (5, 11), &dev).unwrap())).unwrap();
        let targets = Tensor::new(&[3u32, 0, 10, 3, 7], &dev).unwrap();
        let w = Tensor::new(&[1.0f64, -2.0, 0.5, 3.0, -1.0], &dev).unwrap();
        let ours = gather_log_softmax(x.as_tensor(), &targets).unwrap();
        let twin = gather_log_softmax_plain(x.as_tensor(), &targets).unwrap();
        assert!(max_diff(&ours, &twin) < 1e-12);
        let g_ours = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_twin = (twin * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (g_ours.get(&x).unwrap(), g_twin.get(&x).unwrap());
        assert!(max_diff(a, b) < 1e-12, "{}", max_diff(a, b));
    }
}

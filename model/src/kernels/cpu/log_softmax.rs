//! `log_softmax(logits)[target]` per row as one custom op ([`gather_log_softmax_fused`]) with
//! its composed twin ([`gather_log_softmax_plain`]): `logits` `(n, vocab)`, `targets` `(n,)` ->
//! `(n,)`, nats.
//!
//! Forward: one pass for the row max, one for `sum exp`, the picked logit minus the log-sum-exp.
//! Backward writes `grad_i (onehot(target_i) - softmax_i)` straight into the logits' gradient
//! in one pass per row, where the composed version needs `sub`, `exp`, `sum`, `log`, `gather`
//! and their backward ops over the whole `(n, vocab)` block (docs/performance.md, CPU cause 4). Rows run in
//! parallel with rayon.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::storage::contiguous_f32;
use crate::Result;

/// Composed twin: max (detached), shift, `log(sum(exp))`, gather.
///
/// # Errors
/// Shape mismatch.
pub fn gather_log_softmax_plain(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let picked = shifted.gather(&targets.unsqueeze(1)?, 1)?;
    Ok((picked - lse)?.squeeze(1)?)
}

/// The custom op for f32 on the CPU, [`crate::kernels::cuda::softmax::gather_log_softmax`] on other
/// devices, the plain twin otherwise.
///
/// # Errors
/// Shape mismatch, a target outside the vocabulary.
pub fn gather_log_softmax_fused(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, vocab) = logits.dims2()?;
    if targets.dims() != [n] {
        return gather_log_softmax_plain(logits, targets);
    }
    if !logits.device().is_cpu() {
        return crate::kernels::cuda::softmax::gather_log_softmax(logits, targets);
    }
    if logits.dtype() != DType::F32 {
        return gather_log_softmax_plain(logits, targets);
    }
    let targets: Vec<u32> = targets.to_dtype(DType::U32)?.to_vec1()?;
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        return Err(crate::Error::ModelInput {
            message: format!("target token {bad} is outside the vocabulary of {vocab}"),
        });
    }
    let op = GatherLogSoftmax {
        targets,
        lse: Mutex::new(Vec::new()),
    };
    Ok(logits.contiguous()?.apply_op1(op)?)
}

struct GatherLogSoftmax {
    targets: Vec<u32>,
    lse: Mutex<Vec<f32>>,
}

impl CustomOp1 for GatherLogSoftmax {
    fn name(&self) -> &'static str {
        "gather-log-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, vocab) = layout.shape().dims2()?;
        let logits = contiguous_f32("gather-log-softmax", "logits", storage, layout)?;
        let x = logits;
        let (out, lse): (Vec<f32>, Vec<f32>) = x
            .par_chunks(vocab)
            .zip(self.targets.par_iter())
            .map(|(row, &t)| {
                let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
                let lse = max + sum.ln();
                (row[t as usize] - lse, lse)
            })
            .unzip();
        debug_assert_eq!(out.len(), n);
        *self.lse.lock().unwrap_or_else(|e| e.into_inner()) = lse;
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (n, vocab) = arg.dims2()?;
        let x: Vec<f32> = arg.contiguous()?.flatten_all()?.to_vec1()?;
        let g: Vec<f32> = grad_res.to_dtype(DType::F32)?.to_vec1()?;
        let lse = self.lse.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if lse.len() != n {
            candle_core::bail!("gather-log-softmax: backward without a matching forward");
        }
        let mut grad = vec![0f32; n * vocab];
        grad.par_chunks_mut(vocab).enumerate().for_each(|(i, out)| {
            let row = &x[i * vocab..(i + 1) * vocab];
            let (gi, l) = (g[i], lse[i]);
            for (o, v) in out.iter_mut().zip(row) {
                *o = -gi * (v - l).exp();
            }
            out[self.targets[i] as usize] += gi;
        });
        Ok(Some(Tensor::from_vec(grad, (n, vocab), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::testing::max_diff;

    #[test]
    fn fused_equals_plain_twin_forward_and_gradient() {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 3.0, (5, 37), &dev).unwrap();
        let t = Tensor::new(&[0u32, 36, 5, 5, 17], &dev).unwrap();
        let w = Tensor::new(&[1.0f32, -0.5, 2.0, 0.25, 1.5], &dev).unwrap();
        let fast = gather_log_softmax_fused(&x, &t).unwrap();
        let plain = gather_log_softmax_plain(&x, &t).unwrap();
        let d = max_diff(&fast, &plain);
        assert!(d < 1e-5, "{d}");
        let gf = (fast * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (plain * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let d = max_diff(gf.get(&x).unwrap(), gp.get(&x).unwrap());
        assert!(d < 1e-5, "{d}");
        let bad = Tensor::new(&[0u32, 37, 0, 0, 0], &dev).unwrap();
        assert!(gather_log_softmax_fused(&x, &bad).is_err());
    }
}

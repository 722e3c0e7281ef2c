//! RMSNorm's fast CPU op and its plain twin: `y = x / sqrt(mean(x^2, last) + eps) * weight`.
//!
//! [`rms_norm_plain`] is built from `sqr`, `mean_keepdim`, `sqrt`, `recip` and broadcasts, all of
//! which have backward passes (candle-nn's fused `rms_norm` has none and would cut the
//! gradient). [`rms_norm`] runs a custom op on f32 CPU tensors: one pass per row forward, and a
//! backward that gives only the input gradient (the weight is frozen),
//! `dx = r (w g) - x r^3 / H sum(w g x)` with `r = 1 / rms(x)`, instead of candle's broadcast
//! backward sums (docs/performance.md, CPU cause 5).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::storage::contiguous_f32;
use crate::Result;

/// Whether [`rms_norm`] can take `x` and `weight`: f32 on the CPU, `x` of shape `(..., hidden)`.
///
/// # Errors
/// A weight that is not a vector.
pub fn rms_norm_supported(x: &Tensor, weight: &Tensor) -> Result<bool> {
    Ok(x.device().is_cpu()
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && x.dim(D::Minus1)? == weight.dim(0)?)
}

/// RMSNorm of `x` (`(..., hidden)`) with the frozen `weight` (`(hidden,)`), fused; only for
/// inputs [`rms_norm_supported`] accepts.
///
/// # Errors
/// Tensor errors.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let weight: Vec<f32> = weight.to_vec1()?;
    Ok(x.contiguous()?.apply_op1(RmsNormOp {
        weight,
        eps: eps as f32,
    })?)
}

/// The composed twin of [`rms_norm`], for any device and dtype.
///
/// # Errors
/// Shape mismatch between `x` and the weight.
pub fn rms_norm_plain(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    // Half-precision inputs are normalized in f32 and cast back before the scale, as
    // Hugging Face's LlamaRMSNorm does: a bf16 mean of squares loses too many digits.
    let x32 = match x.dtype() {
        DType::BF16 | DType::F16 => x.to_dtype(DType::F32)?,
        _ => x.clone(),
    };
    let inv_rms = (x32.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let normed = x32.broadcast_mul(&inv_rms)?.to_dtype(x.dtype())?;
    Ok(normed.broadcast_mul(weight)?)
}

/// The fused op: the frozen weight and epsilon.
struct RmsNormOp {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNormOp {
    fn inv_rms(&self, row: &[f32]) -> f32 {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        1.0 / (ms + self.eps).sqrt()
    }
}

impl CustomOp1 for RmsNormOp {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let data = contiguous_f32("rms-norm", "input", storage, layout)?;
        let h = self.weight.len();
        let mut out = vec![0f32; data.len()];
        out.par_chunks_mut(h)
            .zip(data.par_chunks(h))
            .for_each(|(o, x)| {
                let r = self.inv_rms(x);
                for ((o, x), w) in o.iter_mut().zip(x).zip(&self.weight) {
                    *o = x * r * w;
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let h = self.weight.len();
        let x: Vec<f32> = arg.contiguous()?.flatten_all()?.to_vec1()?;
        let g: Vec<f32> = grad_res.contiguous()?.flatten_all()?.to_vec1()?;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(h)
            .zip(x.par_chunks(h))
            .zip(g.par_chunks(h))
            .for_each(|((d, x), g)| {
                let r = self.inv_rms(x);
                let dot: f32 = x
                    .iter()
                    .zip(g)
                    .zip(&self.weight)
                    .map(|((x, g), w)| x * g * w)
                    .sum();
                let c = r * r * r * dot / h as f32;
                for (((d, x), g), w) in d.iter_mut().zip(x).zip(g).zip(&self.weight) {
                    *d = r * w * g - x * c;
                }
            });
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn fast_path_equals_plain_twin_forward_and_input_gradient() {
        let dev = Device::Cpu;
        let weight = Tensor::randn(1f32, 0.2, 12, &dev).unwrap();
        let x = Var::randn(0f32, 1.0, (2, 3, 12), &dev).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (2, 3, 12), &dev).unwrap();
        let fast = rms_norm(&x, &weight, 1e-5).unwrap();
        let plain = rms_norm_plain(&x, &weight, 1e-5).unwrap();
        let max = |t: Tensor| -> f32 {
            t.abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert!(max((&fast - &plain).unwrap()) < 1e-5);
        let gf = (fast * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gp = (plain * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(max((gf.get(&x).unwrap() - gp.get(&x).unwrap()).unwrap()) < 1e-5);
    }
}

//! RMSNorm, differentiable: `y = x / sqrt(mean(x^2, last) + eps) * weight`, any leading shape,
//! `weight` of shape `(hidden,)` and frozen.
//!
//! [`RmsNorm::forward_plain`] is built from `sqr`, `mean_keepdim`, `sqrt`, `recip` and
//! broadcasts, all of which have backward passes (candle-nn's fused `rms_norm` has none and would
//! cut the gradient). [`RmsNorm::forward`] runs a custom op on f32 CPU tensors: one pass per row
//! forward, and a backward that gives only the input gradient (the weight is frozen),
//! `dx = r (w g) - x r^3 / H sum(w g x)` with `r = 1 / rms(x)`, instead of candle's broadcast
//! backward sums (PERF-CPU.md cause 5).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::Result;

/// A frozen RMSNorm layer.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `weight` of shape `(hidden,)` from `vb`.
    ///
    /// # Errors
    /// A missing tensor or wrong shape, named by candle's VarBuilder.
    pub fn load(vb: VarBuilder, hidden: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(hidden, "weight")?,
            eps,
        })
    }

    /// Wraps an existing weight.
    pub fn new(weight: Tensor, eps: f64) -> Self {
        Self { weight, eps }
    }

    /// The scale vector `(hidden,)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Normalizes over the last dimension of `x` (`(..., hidden)` -> same shape).
    ///
    /// # Errors
    /// Shape mismatch between `x` and the weight.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = self.weight.dim(0)?;
        if x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.weight.dtype() == DType::F32
            && x.dim(D::Minus1)? == hidden
        {
            let weight: Vec<f32> = self.weight.to_vec1()?;
            return Ok(x.contiguous()?.apply_op1(RmsNormOp {
                weight,
                eps: self.eps as f32,
            })?);
        }
        self.forward_plain(x)
    }

    /// The composed twin of [`Self::forward`].
    ///
    /// # Errors
    /// Shape mismatch between `x` and the weight.
    pub fn forward_plain(&self, x: &Tensor) -> Result<Tensor> {
        // Half-precision inputs are normalized in f32 and cast back before the scale, as
        // Hugging Face's LlamaRMSNorm does: a bf16 mean of squares loses too many digits.
        let x32 = match x.dtype() {
            DType::BF16 | DType::F16 => x.to_dtype(DType::F32)?,
            _ => x.clone(),
        };
        let inv_rms = (x32.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?
            .sqrt()?
            .recip()?;
        let normed = x32.broadcast_mul(&inv_rms)?.to_dtype(x.dtype())?;
        Ok(normed.broadcast_mul(&self.weight)?)
    }
}

/// The fast path: the frozen weight and epsilon.
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
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("rms-norm: input must be f32")
        };
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("rms-norm: input must be contiguous")
        };
        let h = self.weight.len();
        let mut out = vec![0f32; b - a];
        out.par_chunks_mut(h)
            .zip(data[a..b].par_chunks(h))
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
    use super::*;
    use candle_core::{DType, Device, Var};

    #[test]
    fn matches_candle_fused_rms_norm_and_passes_gradient() {
        let dev = Device::Cpu;
        let w = Tensor::randn(1f32, 0.1, 8, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 8), &dev).unwrap();
        let ours = RmsNorm::new(w.clone(), 1e-5).forward_plain(&x).unwrap();
        let fused = candle_nn::ops::rms_norm(&x, &w, 1e-5).unwrap();
        let diff = (ours - fused).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);

        // Finite differences in f64 on one coordinate of x.
        let w = w.to_dtype(DType::F64).unwrap();
        let norm = RmsNorm::new(w, 1e-5);
        let x0 = Tensor::randn(0f64, 1.0, (1, 8), &dev).unwrap();
        let probe = Tensor::randn(0f64, 1.0, (1, 8), &dev).unwrap();
        let f = |x: &Tensor| -> f64 {
            (norm.forward(x).unwrap() * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let xv = Var::from_tensor(&x0).unwrap();
        let loss = (norm.forward(&xv).unwrap() * &probe)
            .unwrap()
            .sum_all()
            .unwrap();
        let g = loss
            .backward()
            .unwrap()
            .get(&xv)
            .unwrap()
            .flatten_all()
            .unwrap();
        let g: Vec<f64> = g.to_vec1().unwrap();
        let h = 1e-6;
        for i in 0..8 {
            let mut e = vec![0f64; 8];
            e[i] = h;
            let e = Tensor::from_vec(e, (1, 8), &dev).unwrap();
            let fd = (f(&(&x0 + &e).unwrap()) - f(&(&x0 - &e).unwrap())) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-7,
                "coordinate {i}: fd {fd} vs {}",
                g[i]
            );
        }
    }

    #[test]
    fn fast_path_equals_plain_twin_forward_and_input_gradient() {
        let dev = Device::Cpu;
        let norm = RmsNorm::new(Tensor::randn(1f32, 0.2, 12, &dev).unwrap(), 1e-5);
        let x = Var::randn(0f32, 1.0, (2, 3, 12), &dev).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (2, 3, 12), &dev).unwrap();
        let fast = norm.forward(&x).unwrap();
        let plain = norm.forward_plain(&x).unwrap();
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

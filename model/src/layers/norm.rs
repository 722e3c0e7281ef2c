//! RMSNorm, differentiable: `y = x / sqrt(mean(x^2, last) + eps) * weight`, any leading shape,
//! `weight` of shape `(hidden,)` and frozen. The fast CPU op and the plain twin are in
//! [`crate::kernels::cpu::rms_norm`]; on other devices [`crate::kernels::cuda::rms_norm`] keeps
//! only the input for backward.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::kernels::cpu::rms_norm::{rms_norm, rms_norm_plain, rms_norm_supported};
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
        if rms_norm_supported(x, &self.weight)? {
            return rms_norm(x, &self.weight, self.eps);
        }
        if !x.device().is_cpu() {
            return crate::kernels::cuda::rms_norm::rms_norm(x, &self.weight, self.eps);
        }
        self.forward_plain(x)
    }

    /// The composed twin of [`Self::forward`].
    ///
    /// # Errors
    /// Shape mismatch between `x` and the weight.
    pub fn forward_plain(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm_plain(x, &self.weight, self.eps)
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
}

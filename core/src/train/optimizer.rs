//! AdamW with PyTorch's semantics (the optimizer PEFT/TRL use), gradient clipping by global
//! norm (`torch.nn.utils.clip_grad_norm_`) and gradient accumulation over micro-batches.
//!
//! For each parameter `p` with gradient `g` at step `t`:
//! `p <- p (1 - lr wd)`, `m <- b1 m + (1 - b1) g`, `v <- b2 v + (1 - b2) g^2`,
//! `p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
//! Defaults: betas 0.9 / 0.999, eps 1e-8, weight decay 0 (TRL's defaults; lr is given).
//! Fed by the adapter's vars and the gradients of a backward pass (possibly edited by the
//! federation code, e.g. FedProx's proximal term); the moments are exported for checkpoints.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::{Error, Result};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this before each step (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
}

impl AdamWConfig {
    /// TRL's defaults with learning rate `lr` and `max_grad_norm = 1.0`.
    pub fn with_lr(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
        }
    }
}

/// Global L2 norm of `grads`: `sqrt(sum_i ||g_i||^2)`.
///
/// # Errors
/// Tensor errors.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    if grads.is_empty() {
        return Ok(0.0);
    }
    // One read of the device for all tensors (a GPU would otherwise sync once per tensor).
    let squares = grads
        .iter()
        .map(|g| g.to_dtype(DType::F64)?.sqr()?.sum_all())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let total: f64 = Tensor::stack(&squares, 0)?.to_vec1::<f64>()?.iter().sum();
    Ok(total.sqrt())
}

/// Scales `grads` so their global norm is at most `max_norm`, as PyTorch does
/// (`coef = max_norm / (norm + 1e-6)`, applied when below 1). Returns the norm before clipping.
///
/// # Errors
/// Tensor errors.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut() {
            *g = (&*g * coef)?;
        }
    }
    Ok(norm)
}

/// What one optimizer step saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// The step number just taken (1-based).
    pub step: usize,
}

/// AdamW over a fixed list of vars.
#[derive(Debug)]
pub struct AdamW {
    vars: Vec<Var>,
    /// First and second moments of all vars, concatenated in var order (flat): one update of a
    /// few kernels for every parameter, where per-tensor moments cost a dozen kernel launches
    /// per LoRA matrix on a GPU (120 matrices for SmolLM2 with q/v adapters).
    m: Tensor,
    v: Tensor,
    step: usize,
    cfg: AdamWConfig,
}

impl AdamW {
    /// An optimizer with zero moments for `vars`.
    ///
    /// # Errors
    /// Tensor allocation errors.
    pub fn new(vars: Vec<Var>, cfg: AdamWConfig) -> Result<Self> {
        let n: usize = vars.iter().map(|v| v.elem_count()).sum();
        let (dtype, device) = match vars.first() {
            Some(v) => (v.dtype(), v.device().clone()),
            None => (DType::F32, candle_core::Device::Cpu),
        };
        let m = Tensor::zeros(n, dtype, &device)?;
        Ok(Self {
            vars,
            v: m.clone(),
            m,
            step: 0,
            cfg,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Changes the learning rate (schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// The gradients of this optimizer's vars in `store`, zeros where a var got none.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn grads_from(&self, store: &GradStore) -> Result<Vec<Tensor>> {
        self.vars
            .iter()
            .map(|v| match store.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => Ok(v.zeros_like()?),
            })
            .collect()
    }

    /// One AdamW step with `grads` (in var order): clipping when configured, then the update.
    ///
    /// # Errors
    /// [`fedpref_model::Error::ModelInput`] when the gradients do not match the vars; tensor errors.
    pub fn step(&mut self, grads: &[Tensor]) -> Result<StepStats> {
        if grads.len() != self.vars.len() {
            return Err(Error::from(fedpref_model::Error::input(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.vars.len()
            ))));
        }
        for (i, (g, var)) in grads.iter().zip(&self.vars).enumerate() {
            if g.dims() != var.dims() {
                return Err(Error::from(fedpref_model::Error::input(format!(
                    "gradient {i} has shape {:?}, parameter {:?}",
                    g.dims(),
                    var.dims()
                ))));
            }
        }
        if self.vars.is_empty() {
            self.step += 1;
            return Ok(StepStats {
                grad_norm: 0.0,
                step: self.step,
            });
        }
        let flat = grads
            .iter()
            .map(Tensor::flatten_all)
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut g = Tensor::cat(&flat, 0)?;
        let grad_norm = global_norm(std::slice::from_ref(&g))?;
        if let Some(max) = self.cfg.max_grad_norm {
            let coef = max / (grad_norm + 1e-6);
            if coef < 1.0 {
                g = (g * coef)?;
            }
        }
        self.step += 1;
        let c = &self.cfg;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        self.m = ((&self.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
        self.v = ((&self.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
        let denom = ((self.v.sqrt()? / bc2.sqrt())? + c.eps)?;
        let update = ((&self.m / denom)? * (c.lr / bc1))?;
        let mut at = 0;
        for var in &self.vars {
            let n = var.elem_count();
            let mut p = var.as_tensor().detach();
            if c.weight_decay != 0.0 {
                p = (p * (1.0 - c.lr * c.weight_decay))?;
            }
            var.set(&(p - update.narrow(0, at, n)?.reshape(var.shape())?)?)?;
            at += n;
        }
        Ok(StepStats {
            grad_norm,
            step: self.step,
        })
    }

    /// The moments, flattened in var order, and the step count (for checkpoints).
    ///
    /// # Errors
    /// Tensor errors.
    pub fn export_state(&self) -> Result<(Vec<f32>, Vec<f32>, usize)> {
        let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.to_dtype(DType::F32)?.to_vec1()?) };
        Ok((flat(&self.m)?, flat(&self.v)?, self.step))
    }

    /// Restores what [`Self::export_state`] returned.
    ///
    /// # Errors
    /// [`fedpref_model::Error::ModelInput`] for vectors of the wrong length.
    pub fn import_state(&mut self, m: &[f32], v: &[f32], step: usize) -> Result<()> {
        let n = self.m.elem_count();
        if m.len() != n || v.len() != n {
            return Err(Error::from(fedpref_model::Error::input(format!(
                "optimizer state of {} / {} values, expected {n}",
                m.len(),
                v.len()
            ))));
        }
        let (device, dtype) = (self.m.device().clone(), self.m.dtype());
        let load = |src: &[f32]| -> Result<Tensor> {
            Ok(Tensor::from_slice(src, n, &device)?.to_dtype(dtype)?)
        };
        self.m = load(m)?;
        self.v = load(v)?;
        self.step = step;
        Ok(())
    }
}

/// Sums gradients over micro-batches; [`Self::mean`] gives what one batch of all of them would
/// (when each micro-batch loss is a mean over equally many items).
#[derive(Debug)]
pub struct GradAccumulator {
    vars: Vec<Var>,
    sums: Vec<Option<Tensor>>,
    micro_batches: usize,
}

impl GradAccumulator {
    /// An empty accumulator for `vars`.
    pub fn new(vars: Vec<Var>) -> Self {
        let n = vars.len();
        Self {
            vars,
            sums: vec![None; n],
            micro_batches: 0,
        }
    }

    /// Adds one backward pass's gradients.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn add(&mut self, store: &GradStore) -> Result<()> {
        for (i, v) in self.vars.iter().enumerate() {
            if let Some(g) = store.get(v.as_tensor()) {
                self.sums[i] = Some(match &self.sums[i] {
                    None => g.detach(),
                    Some(s) => (s + g)?,
                });
            }
        }
        self.micro_batches += 1;
        Ok(())
    }

    /// Micro-batches added so far.
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
    }

    /// Summed gradients in var order (zeros where none arrived); resets the accumulator.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn take_sum(&mut self) -> Result<Vec<Tensor>> {
        let out = self
            .vars
            .iter()
            .zip(self.sums.iter_mut())
            .map(|(v, s)| match s.take() {
                Some(t) => Ok(t),
                None => Ok(v.zeros_like()?),
            })
            .collect();
        self.micro_batches = 0;
        out
    }

    /// Mean gradients over the micro-batches (sum / count); resets the accumulator.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn take_mean(&mut self) -> Result<Vec<Tensor>> {
        let n = self.micro_batches.max(1) as f64;
        self.take_sum()?.into_iter().map(|t| Ok((t / n)?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn vec1(t: &Tensor) -> Vec<f64> {
        t.flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn adamw_matches_hand_computation() {
        let dev = Device::Cpu;
        let p = Var::from_vec(vec![1.0f64, -2.0], 2, &dev).unwrap();
        let cfg = AdamWConfig {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: None,
        };
        let mut opt = AdamW::new(vec![p.clone()], cfg).unwrap();
        // Step 1, g = (0.5, -1): m = (0.05, -0.1), v = (0.00025, 0.001), m_hat = g, v_hat = g^2,
        // update = lr * g / (|g| + eps) = (0.1, -0.1) (up to eps); decay first: p * (1 - 0.001).
        opt.step(&[Tensor::new(&[0.5f64, -1.0], &dev).unwrap()])
            .unwrap();
        let want1 = [
            1.0 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8),
            -2.0 * 0.999 + 0.1 * 1.0 / (1.0 + 1e-8),
        ];
        for (g, w) in vec1(p.as_tensor()).iter().zip(want1) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        // Step 2, g = (1, 1): m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2, bias-corrected.
        opt.step(&[Tensor::new(&[1.0f64, 1.0], &dev).unwrap()])
            .unwrap();
        let (m, v) = (
            [0.9 * 0.05 + 0.1, 0.9 * -0.1 + 0.1],
            [0.999 * 0.00025 + 0.001, 0.999 * 0.001 + 0.001],
        );
        let (bc1, bc2) = (1.0 - 0.9f64.powi(2), 1.0 - 0.999f64.powi(2));
        let want2: Vec<f64> = (0..2)
            .map(|i| want1[i] * 0.999 - 0.1 * (m[i] / bc1) / ((v[i] / bc2).sqrt() + 1e-8))
            .collect();
        for (g, w) in vec1(p.as_tensor()).iter().zip(want2) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        let (em, ev, step) = opt.export_state().unwrap();
        assert_eq!(step, 2);
        assert!((em[0] as f64 - m[0]).abs() < 1e-7 && (ev[1] as f64 - v[1]).abs() < 1e-7);
    }

    #[test]
    fn clipping_scales_to_the_max_norm_like_torch() {
        let dev = Device::Cpu;
        let mut g = vec![
            Tensor::new(&[3.0f64], &dev).unwrap(),
            Tensor::new(&[4.0f64], &dev).unwrap(),
        ];
        let norm = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-12);
        let coef = 1.0 / (5.0 + 1e-6);
        assert!((vec1(&g[0])[0] - 3.0 * coef).abs() < 1e-12);
        assert!((vec1(&g[1])[0] - 4.0 * coef).abs() < 1e-12);
        // Below the limit nothing changes.
        let mut small = vec![Tensor::new(&[0.3f64, 0.4], &dev).unwrap()];
        clip_grad_norm(&mut small, 1.0).unwrap();
        assert_eq!(vec1(&small[0]), vec![0.3, 0.4]);
    }

    #[test]
    fn accumulated_mean_equals_full_batch_gradient() {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![0.5f64, -0.25, 2.0], 3, &dev).unwrap();
        let xs = Tensor::new(
            &[
                [1.0f64, 2.0, 3.0],
                [-1.0, 0.5, 0.0],
                [2.0, 2.0, -1.0],
                [0.0, 1.0, 1.0],
            ],
            &dev,
        )
        .unwrap();
        // Loss: mean over rows of (x . w)^2.
        let loss = |x: &Tensor| -> Tensor {
            x.matmul(&w.as_tensor().unsqueeze(1).unwrap())
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap()
        };
        let full = loss(&xs).backward().unwrap();
        let full = vec1(full.get(w.as_tensor()).unwrap());
        let mut acc = GradAccumulator::new(vec![w.clone()]);
        acc.add(&loss(&xs.narrow(0, 0, 2).unwrap()).backward().unwrap())
            .unwrap();
        acc.add(&loss(&xs.narrow(0, 2, 2).unwrap()).backward().unwrap())
            .unwrap();
        assert_eq!(acc.micro_batches(), 2);
        let mean = vec1(&acc.take_mean().unwrap()[0]);
        for (a, b) in mean.iter().zip(&full) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert_eq!(acc.micro_batches(), 0);
        assert_eq!(vec1(&acc.take_sum().unwrap()[0]), vec![0.0; 3]);
    }
}

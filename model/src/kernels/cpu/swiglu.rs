//! SwiGLU's elementwise part, `silu(g) * u = g sigmoid(g) u`, as one custom op
//! ([`swiglu`]) with its composed twin ([`swiglu_plain`]); `g`, `u` of equal shape.
//!
//! Backward: `dg = dy u s (1 + g (1 - s))`, `du = dy g s` with `s = sigmoid(g)`, one pass,
//! where the composed version runs silu's backward and two multiplications' (docs/performance.md,
//! CPU cause 4: 15.8 ms vs 3.6 ms per layer). Both inputs may carry LoRA, so both get gradients.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::storage::contiguous_f32;
use crate::Result;

/// Composed twin: `silu(g) * u`.
///
/// # Errors
/// Shape mismatch.
pub fn swiglu_plain(g: &Tensor, u: &Tensor) -> Result<Tensor> {
    Ok((g.silu()? * u)?)
}

/// `silu(g) * u`; the custom op for f32 on the CPU, the plain twin otherwise.
///
/// # Errors
/// Shape mismatch.
pub fn swiglu(g: &Tensor, u: &Tensor) -> Result<Tensor> {
    if !(g.device().is_cpu() && g.dtype() == DType::F32 && u.dtype() == DType::F32)
        || g.dims() != u.dims()
    {
        return swiglu_plain(g, u);
    }
    Ok(g.contiguous()?.apply_op2(&u.contiguous()?, SwiGlu)?)
}

struct SwiGlu;

const CHUNK: usize = 4096;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, u) = (
            contiguous_f32("swiglu", "gate", s1, l1)?,
            contiguous_f32("swiglu", "up", s2, l2)?,
        );
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(u.par_chunks(CHUNK))
            .for_each(|((o, g), u)| {
                for ((o, g), u) in o.iter_mut().zip(g).zip(u) {
                    *o = g / (1.0 + (-g).exp()) * u;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        g_t: &Tensor,
        u_t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g: Vec<f32> = g_t.contiguous()?.flatten_all()?.to_vec1()?;
        let u: Vec<f32> = u_t.contiguous()?.flatten_all()?.to_vec1()?;
        let dy: Vec<f32> = grad.contiguous()?.flatten_all()?.to_vec1()?;
        let mut dg = vec![0f32; g.len()];
        let mut du = vec![0f32; g.len()];
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(
                g.par_chunks(CHUNK)
                    .zip(u.par_chunks(CHUNK))
                    .zip(dy.par_chunks(CHUNK)),
            )
            .for_each(|((dg, du), ((g, u), dy))| {
                for i in 0..g.len() {
                    let s = 1.0 / (1.0 + (-g[i]).exp());
                    dg[i] = dy[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                    du[i] = dy[i] * g[i] * s;
                }
            });
        let dev = g_t.device();
        Ok((
            Some(Tensor::from_vec(dg, g_t.shape(), dev)?),
            Some(Tensor::from_vec(du, u_t.shape(), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn fused_equals_plain_twin_forward_and_gradients() {
        let dev = Device::Cpu;
        let g = Var::randn(0f32, 2.0, (3, 5000), &dev).unwrap();
        let u = Var::randn(0f32, 1.0, (3, 5000), &dev).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (3, 5000), &dev).unwrap();
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
        let fast = swiglu(&g, &u).unwrap();
        let plain = swiglu_plain(&g, &u).unwrap();
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
        assert!(max((gf.get(&g).unwrap() - gp.get(&g).unwrap()).unwrap()) < 1e-4);
        assert!(max((gf.get(&u).unwrap() - gp.get(&u).unwrap()).unwrap()) < 1e-4);
    }
}

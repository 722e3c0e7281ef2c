//! RoPE's fast CPU op and its plain twin. For position `p` and pair frequency `f_i`, a pair
//! `(x1, x2)` becomes `(x1 cos - x2 sin, x1 sin + x2 cos)` at angle `p f_i`; the backward is the
//! same rotation by the opposite angle, RoPE being orthogonal. The tables and the choice of op
//! are in [`crate::layers::rope`].

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::storage::contiguous_f32;
use crate::Result;

/// Which features RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// `(x[i], x[i + d/2])` pairs: Hugging Face / NeoX layout.
    Half,
    /// `(x[2i], x[2i + 1])` pairs: GGUF llama layout.
    Interleaved,
}

/// Whether [`rope`] can take `x` `(batch, heads, seq, d)` with tables `cos` `(rows, d/2)`
/// holding at least `rows_needed` positions: f32 on the CPU.
///
/// # Errors
/// Shape errors.
pub fn rope_supported(x: &Tensor, cos: &Tensor, rows_needed: usize) -> Result<bool> {
    let (_, _, _, d) = x.dims4()?;
    Ok(x.device().is_cpu()
        && x.dtype() == DType::F32
        && cos.dtype() == DType::F32
        && d == 2 * cos.dim(1)?
        && rows_needed <= cos.dim(0)?)
}

/// Rotates `x` `(batch, heads, seq, d)` by the tables `cos`, `sin` of its positions, fused:
/// `(seq, d/2)` when every row sits at the same positions, `(batch * seq, d/2)` when each row
/// has its own (a shared-prefix batch); only for inputs [`rope_supported`] accepts.
///
/// # Errors
/// Tensor errors; tables of neither shape.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
    let (b, _, s, _) = x.dims4()?;
    let rows = cos.dim(0)?;
    if rows != s && rows != b * s {
        return Err(crate::Error::ModelInput {
            message: format!("rope tables of {rows} positions for {b} rows of {s}"),
        });
    }
    let cos: Vec<f32> = cos.flatten_all()?.to_vec1()?;
    let sin: Vec<f32> = sin.flatten_all()?.to_vec1()?;
    let op = RopeOp {
        cos: Arc::new(cos),
        sin: Arc::new(sin),
        per_row: rows != s,
        style,
        inverse: false,
    };
    Ok(x.contiguous()?.apply_op1(op)?)
}

/// The composed twin of [`rope`] (narrow, multiply, cat / stack), for any device and dtype.
///
/// # Errors
/// Shape errors.
pub fn rope_plain(x: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
    let (b, h, s, d) = x.dims4()?;
    let half = d / 2;
    Ok(match style {
        RopeStyle::Half => {
            let x1 = x.narrow(D::Minus1, 0, half)?;
            let x2 = x.narrow(D::Minus1, half, half)?;
            let r1 = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
            let r2 = (x1.broadcast_mul(sin)? + x2.broadcast_mul(cos)?)?;
            Tensor::cat(&[r1, r2], D::Minus1)?
        }
        RopeStyle::Interleaved => {
            let xp = x.reshape((b, h, s, half, 2))?;
            let x1 = xp.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
            let x2 = xp.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
            let r1 = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
            let r2 = (x1.broadcast_mul(sin)? + x2.broadcast_mul(cos)?)?;
            Tensor::stack(&[r1, r2], D::Minus1)?.reshape((b, h, s, d))?
        }
    })
}

/// The fused op: tables for the `seq` positions of this call, `(seq, d/2)` each, or one such
/// block per batch row (`per_row`). The backward is the same rotation by the opposite angle
/// (`inverse`), RoPE being orthogonal.
struct RopeOp {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    per_row: bool,
    style: RopeStyle,
    inverse: bool,
}

impl CustomOp1 for RopeOp {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, heads, s, d) = layout.shape().dims4()?;
        let data = contiguous_f32("rope", "input", storage, layout)?;
        let half = d / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut out = vec![0f32; data.len()];
        // One chunk per (batch, head): s rows of d.
        out.par_chunks_mut(s * d)
            .zip(data.par_chunks(s * d))
            .enumerate()
            .for_each(|(chunk, (o, x))| {
                let table = if self.per_row {
                    chunk / heads * s * half
                } else {
                    0
                };
                for p in 0..s {
                    let at = table + p * half;
                    let (cos, sin) = (&self.cos[at..at + half], &self.sin[at..at + half]);
                    let (xr, or) = (&x[p * d..(p + 1) * d], &mut o[p * d..(p + 1) * d]);
                    for i in 0..half {
                        let (c, sn) = (cos[i], sign * sin[i]);
                        let (i1, i2) = match self.style {
                            RopeStyle::Half => (i, i + half),
                            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                        };
                        let (x1, x2) = (xr[i1], xr[i2]);
                        or[i1] = x1 * c - x2 * sn;
                        or[i2] = x1 * sn + x2 * c;
                    }
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let op = RopeOp {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            per_row: self.per_row,
            style: self.style,
            inverse: !self.inverse,
        };
        Ok(Some(grad_res.contiguous()?.apply_op1(op)?))
    }
}

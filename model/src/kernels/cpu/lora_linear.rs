//! A frozen projection plus its LoRA branch as one custom op ([`lora_linear`]):
//! `y = x W^T + s ((x o m) A^T) B^T`, `x` `(..., in)`, `W` `(out, in)` frozen, `A` `(r, in)`,
//! `B` `(out, r)` trainable, `s = alpha / r`, `m` the inverted-dropout mask (or none).
//!
//! Backward, with `h = (x o m) A^T` kept from the forward and `g = dy B`:
//! `dx = dy W + s (g A) o m`, `dA = s g^T (x o m)`, `dB = s dy^T h`; no gradient for `W`.
//! The composed path ([`crate::layers::linear::Linear::forward_plain`]) builds the mask tensor, two
//! small matmuls, a scale and an add, each with its own backward and zero-filled gradient
//! buffers over `(n, in)` or `(n, out)`: about as much time as the frozen matmul itself for the
//! LoRA'd modules. Here it is five matmuls and one elementwise pass each way.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor, D};

use super::storage::{contiguous_f32, host_f32};
use crate::kernels::frozen_matmul::x_wt_f32;
use crate::Result;

/// The op's name in errors.
const OP: &str = "lora-linear";

/// `x W^T + s ((x o mask) A^T) B^T` with gradients for `x`, `A`, `B`. CPU f32 only: callers
/// check [`lora_linear_supported`] and otherwise take the composed path.
///
/// # Errors
/// Shape mismatch.
pub fn lora_linear(
    x: &Tensor,
    w: &Tensor,
    a: &Tensor,
    b: &Tensor,
    scaling: f64,
    mask: Option<Vec<f32>>,
) -> Result<Tensor> {
    let op = LoraLinear {
        w: w.contiguous()?,
        scaling: scaling as f32,
        mask,
        h: Mutex::new(Vec::new()),
    };
    Ok(x.contiguous()?
        .apply_op3(&a.contiguous()?, &b.contiguous()?, op)?)
}

/// Whether [`lora_linear`] handles these operands (CPU, all f32, matching shapes).
pub fn lora_linear_supported(x: &Tensor, w: &Tensor, a: &Tensor, b: &Tensor) -> bool {
    let all_f32 = [x, w, a, b]
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.device().is_cpu());
    let (Ok((out, inp)), Ok((r, a_in)), Ok((b_out, b_r))) = (w.dims2(), a.dims2(), b.dims2())
    else {
        return false;
    };
    all_f32 && x.dim(D::Minus1).ok() == Some(inp) && a_in == inp && b_out == out && b_r == r
}

struct LoraLinear {
    w: Tensor,
    scaling: f32,
    /// Inverted-dropout mask over `x` (`n * in`), already scaled by `1 / (1 - p)`.
    mask: Option<Vec<f32>>,
    /// `(x o m) A^T`, `(n, r)`, from the forward.
    h: Mutex<Vec<f32>>,
}

/// `dst (m, n) = beta * dst [if accumulate] + alpha * lhs (m, k) rhs (k, n)`, operands by
/// pointer and (row, column) strides, parallel over candle's threads.
///
/// # Safety
/// Every pointer must address all elements its strides reach for the given sizes; `dst` must
/// not alias `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
    alpha: f32,
) {
    let threads = candle_core::utils::get_num_threads();
    let par = if threads > 1 && m * n * k > 64 * 64 * 64 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        if accumulate { 1.0 } else { 0.0 },
        alpha,
        false,
        false,
        false,
        par,
    );
}

impl LoraLinear {
    /// `x o mask`, or `x` itself without dropout.
    fn masked<'a>(&self, x: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        match &self.mask {
            None => std::borrow::Cow::Borrowed(x),
            Some(m) => std::borrow::Cow::Owned(x.iter().zip(m).map(|(x, m)| x * m).collect()),
        }
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        OP
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (out, inp) = self.w.dims2()?;
        let (r, _) = l2.shape().dims2()?;
        let x = contiguous_f32(OP, "x", s1, l1)?;
        let (a, b) = (
            contiguous_f32(OP, "lora_A", s2, l2)?,
            contiguous_f32(OP, "lora_B", s3, l3)?,
        );
        let n = x.len() / inp;
        if let Some(m) = &self.mask {
            if m.len() != x.len() {
                candle_core::bail!(
                    "lora-linear: dropout mask of {} for {} inputs",
                    m.len(),
                    x.len()
                );
            }
        }
        let (w_storage, w_layout) = self.w.storage_and_layout();
        let candle_core::Storage::Cpu(w_cpu) = &*w_storage else {
            candle_core::bail!("lora-linear: weight is not on the cpu")
        };
        let w = contiguous_f32(OP, "weight", w_cpu, w_layout)?;
        let xm = self.masked(x);
        let mut h = vec![0f32; n * r];
        // The frozen part as every frozen projection computes it (a few rows while decoding
        // stream W once), so a LoRA'd module and a merged one share that path.
        let mut y = x_wt_f32(x, w, n, out, inp);
        // SAFETY (both): row-major buffers of the stated sizes; transposed operands are
        // read through swapped strides (A^T: (in, r) from A (r, in); B^T likewise).
        unsafe {
            mm(
                n,
                r,
                inp,
                h.as_mut_ptr(),
                r,
                false,
                xm.as_ptr(),
                inp,
                1,
                a.as_ptr(),
                1,
                inp,
                1.0,
            );
            mm(
                n,
                out,
                r,
                y.as_mut_ptr(),
                out,
                true,
                h.as_ptr(),
                r,
                1,
                b.as_ptr(),
                1,
                r,
                self.scaling,
            );
        }
        *self.h.lock().unwrap_or_else(|e| e.into_inner()) = h;
        let mut dims = l1.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = out;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x_t: &Tensor,
        a_t: &Tensor,
        b_t: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (out, inp) = self.w.dims2()?;
        let (r, _) = a_t.dims2()?;
        let (x, a, b) = (host_f32(x_t)?, host_f32(a_t)?, host_f32(b_t)?);
        let dy = host_f32(grad_res)?;
        let w = host_f32(&self.w)?;
        let n = x.len() / inp;
        let h = self.h.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if h.len() != n * r {
            candle_core::bail!("lora-linear: backward without a matching forward");
        }
        let s = self.scaling;
        let xm = self.masked(&x);
        let mut g = vec![0f32; n * r];
        let mut dx = vec![0f32; n * inp];
        let mut da = vec![0f32; r * inp];
        let mut db = vec![0f32; out * r];
        // SAFETY: as in the forward; every buffer is row-major with the sizes below.
        unsafe {
            // g = dy B: (n, out) (out, r).
            mm(
                n,
                r,
                out,
                g.as_mut_ptr(),
                r,
                false,
                dy.as_ptr(),
                out,
                1,
                b.as_ptr(),
                r,
                1,
                1.0,
            );
            // dx = dy W: (n, out) (out, in).
            mm(
                n,
                inp,
                out,
                dx.as_mut_ptr(),
                inp,
                false,
                dy.as_ptr(),
                out,
                1,
                w.as_ptr(),
                inp,
                1,
                1.0,
            );
            // dA = s g^T (x o m): (r, n) (n, in).
            mm(
                r,
                inp,
                n,
                da.as_mut_ptr(),
                inp,
                false,
                g.as_ptr(),
                1,
                r,
                xm.as_ptr(),
                inp,
                1,
                s,
            );
            // dB = s dy^T h: (out, n) (n, r).
            mm(
                out,
                r,
                n,
                db.as_mut_ptr(),
                r,
                false,
                dy.as_ptr(),
                1,
                out,
                h.as_ptr(),
                r,
                1,
                s,
            );
        }
        match &self.mask {
            // dx += s g A.
            None => unsafe {
                mm(
                    n,
                    inp,
                    r,
                    dx.as_mut_ptr(),
                    inp,
                    true,
                    g.as_ptr(),
                    r,
                    1,
                    a.as_ptr(),
                    inp,
                    1,
                    s,
                );
            },
            // dx += s (g A) o m.
            Some(m) => {
                let mut t = vec![0f32; n * inp];
                // SAFETY: t is (n, in); g (n, r); a (r, in), all row-major.
                unsafe {
                    mm(
                        n,
                        inp,
                        r,
                        t.as_mut_ptr(),
                        inp,
                        false,
                        g.as_ptr(),
                        r,
                        1,
                        a.as_ptr(),
                        inp,
                        1,
                        s,
                    )
                };
                for ((d, t), m) in dx.iter_mut().zip(&t).zip(m) {
                    *d += t * m;
                }
            }
        }
        let dev = x_t.device();
        Ok((
            Some(Tensor::from_vec(dx, x_t.shape(), dev)?),
            Some(Tensor::from_vec(da, (r, inp), dev)?),
            Some(Tensor::from_vec(db, (out, r), dev)?),
        ))
    }
}

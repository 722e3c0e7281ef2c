//! `x W^T` for a frozen weight `W` (`(out, in)`), `x` `(..., in)` -> `(..., out)`.
//!
//! [`frozen_matmul`] is a candle custom op: on CPU the forward is one `gemm` call (AVX-512 through
//! the `gemm` crate's `x86-v4` feature), or for at most 16 rows (decoding) the weight-streaming
//! kernel of `kernels/cpu/few_rows.rs` ([`x_wt_f32`] picks); the backward returns only the input gradient
//! `grad_y W`; candle's own matmul backward would also compute `x^T grad_y`, the gradient of a
//! weight nobody trains (docs/performance.md, CPU cause 3: a third more matmul work per layer, plus the
//! head; on a GPU it doubled the backward pass of a LoRA step). [`frozen_matmul_plain`] is the plain twin the tests compare it with. Used by every
//! frozen projection and by the output head.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

use crate::kernels::cpu::few_rows::{few_rows_nt, FEW_ROWS};
use crate::Result;

/// `x W^T` with candle's matmul; the reference for [`frozen_matmul`].
///
/// # Errors
/// Shape mismatch between `x`'s last dim and `W`'s second.
pub fn frozen_matmul_plain(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let mut dims = x.dims().to_vec();
    let x2 = x.reshape(((), inp))?;
    let y = x2.matmul(&w.t()?)?;
    if let Some(last) = dims.last_mut() {
        *last = out;
    }
    Ok(y.reshape(dims)?)
}

/// `x W^T`, with a backward pass for `x` only (no gradient for `W`). CPU f32/f64 and CUDA
/// f32/bf16/f16 take the custom op; other devices and dtypes fall back to
/// [`frozen_matmul_plain`].
///
/// # Errors
/// Shape mismatch between `x`'s last dim and `W`'s second.
pub fn frozen_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let fast = x.dtype() == w.dtype()
        && match x.device() {
            Device::Cpu => matches!(x.dtype(), DType::F32 | DType::F64),
            Device::Cuda(_) => matches!(x.dtype(), DType::F32 | DType::BF16 | DType::F16),
            Device::Metal(_) => false,
        };
    if !fast {
        return frozen_matmul_plain(x, w);
    }
    let (_, inp) = w.dims2()?;
    if x.dim(candle_core::D::Minus1)? != inp {
        // Let candle produce its usual shape error.
        return frozen_matmul_plain(x, w);
    }
    let w = w.contiguous()?;
    Ok(x.contiguous()?.apply_op1(FrozenLinear { w })?)
}

/// The custom op: holds the frozen weight, contiguous `(out, in)`.
struct FrozenLinear {
    w: Tensor,
}

/// `dst (m, n) = lhs (m, k) rhs (k, n)`, all row-major except `rhs` given as `(n, k)` row-major
/// (that is, `rhs^T`), through the gemm crate on candle's thread count.
fn gemm_nt<T: 'static + Copy + Default>(
    lhs: &[T],
    rhs_t: &[T],
    m: usize,
    n: usize,
    k: usize,
    zero: T,
    one: T,
) -> Vec<T> {
    let mut dst = vec![T::default(); m * n];
    let threads = candle_core::utils::get_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three buffers hold m*k, n*k and m*n elements; the strides below address
    // exactly those ranges (lhs row-major (m, k); rhs element (kk, j) = rhs_t[j * k + kk];
    // dst row-major (m, n)), and dst does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs_t.as_ptr(),
            k as isize,
            1,
            zero,
            one,
            false,
            false,
            false,
            par,
        );
    }
    dst
}

/// `x (m, k) W^T` in f32, `W` row-major `(n, k)`: a few rows (decoding) stream `W` once
/// ([`few_rows_nt`]), more go through the gemm crate.
pub fn x_wt_f32(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    if m <= FEW_ROWS {
        few_rows_nt(x, w, m, n, k)
    } else {
        gemm_nt(x, w, m, n, k, 0f32, 1f32)
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (out, inp) = self.w.dims2()?;
        let dims = layout.shape().dims();
        let m = layout.shape().elem_count() / inp;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = out;
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!(
                "frozen-linear: input must be contiguous, got strides {:?}",
                layout.stride()
            )
        };
        let (w_storage, w_layout) = self.w.storage_and_layout();
        let candle_core::Storage::Cpu(w_cpu) = &*w_storage else {
            candle_core::bail!("frozen-linear: weight is not on the cpu")
        };
        let Some((ws, we)) = w_layout.contiguous_offsets() else {
            candle_core::bail!("frozen-linear: weight must be contiguous")
        };
        let result = match (storage, w_cpu) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => {
                CpuStorage::F32(x_wt_f32(&x[start..end], &w[ws..we], m, out, inp))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w)) => {
                CpuStorage::F64(gemm_nt(&x[start..end], &w[ws..we], m, out, inp, 0f64, 1f64))
            }
            _ => candle_core::bail!("frozen-linear: input and weight must both be f32 or both f64"),
        };
        Ok((result, Shape::from(out_dims)))
    }

    /// On a GPU: candle's own (cuBLAS) matmul of the storages, `x (m, in)` times the
    /// transposed view of `W`; the point of the op there is the backward below.
    fn cuda_fwd(
        &self,
        storage: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (out, inp) = self.w.dims2()?;
        let m = layout.shape().elem_count() / inp;
        let mut out_dims = layout.shape().dims().to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = out;
        }
        let (w_storage, w_layout) = self.w.storage_and_layout();
        let candle_core::Storage::Cuda(w_cuda) = &*w_storage else {
            candle_core::bail!("frozen-linear: weight is not on the gpu")
        };
        let x_layout = Layout::contiguous_with_offset((m, inp), layout.start_offset());
        let w_t = w_layout.transpose(0, 1)?;
        let y = storage.matmul(w_cuda, (1, m, out, inp), &x_layout, &w_t)?;
        Ok((y, Shape::from(out_dims)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // d(x W^T)/dx applied to grad_y: grad_y W, shaped like x.
        let (out, _) = self.w.dims2()?;
        let g = grad_res.reshape(((), out))?.matmul(&self.w)?;
        Ok(Some(g.reshape(arg.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::testing::max_diff;

    #[test]
    fn fast_path_equals_plain_twin_forward_and_input_gradient() {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            let w = Tensor::randn(0f32, 1.0, (7, 5), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let x0 = Tensor::randn(0f32, 1.0, (2, 3, 5), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let probe = Tensor::randn(0f32, 1.0, (2, 3, 7), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let x = Var::from_tensor(&x0).unwrap();
            let wv = Var::from_tensor(&w).unwrap();
            let fast = frozen_matmul(&x, &wv).unwrap();
            let plain = frozen_matmul_plain(&x, &wv).unwrap();
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            assert!(max_diff(&fast, &plain) < tol);
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
            assert!(max_diff(gf.get(&x).unwrap(), gp.get(&x).unwrap()) < tol);
            // The plain twin differentiates the weight too; the fast path never does.
            assert!(gp.get(&wv).is_some());
            assert!(gf.get(&wv).is_none());
            // A transposed (non-contiguous) input is handled.
            let xt = x0.transpose(0, 1).unwrap();
            assert!(
                max_diff(
                    &frozen_matmul(&xt, &w).unwrap(),
                    &frozen_matmul_plain(&xt, &w).unwrap()
                ) < tol
            );
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((4, 3), DType::F32, &dev).unwrap();
        let x = Tensor::zeros((2, 5), DType::F32, &dev).unwrap();
        assert!(frozen_matmul(&x, &w).is_err());
    }
}

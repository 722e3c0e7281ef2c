//! Device and precision selection: `device = "auto" | "cpu" | "cuda:N"` and
//! `dtype = "f32" | "bf16"` of the config and the CLI's `--device` / `--dtype`.
//!
//! `auto` takes the first CUDA device when this binary was built with the `cuda` feature and
//! one is present, the CPU otherwise. A CPU-only build asked for CUDA says how to get a CUDA
//! build instead of failing somewhere inside candle.

pub mod cpu;

use candle_core::Device;

use crate::{Error, Result};

/// The device named by `name` (`auto`, `cpu`, `cuda` = `cuda:0`, `cuda:N`).
///
/// # Errors
/// [`Error::Usage`] for an unknown name, a CUDA device in a build without CUDA, or a CUDA
/// device that cannot be opened (no GPU, wrong index, driver problem).
pub fn select_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(auto_device()),
        cuda if cuda == "cuda" || cuda.starts_with("cuda:") => {
            let ordinal = match cuda.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n.parse::<usize>().map_err(|_| {
                    Error::Usage(format!(
                        "device {name:?}: expected cuda:N with N a GPU index, e.g. cuda:0"
                    ))
                })?,
            };
            open_cuda(ordinal)
        }
        other => Err(Error::Usage(format!(
            "device {other:?} is not one of auto, cpu, cuda:N"
        ))),
    }
}

/// A short description for logs: `cpu (2 threads)` or `cuda:0`.
pub fn describe(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => {
            format!("cpu ({} threads)", candle_core::utils::get_num_threads())
        }
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(feature = "cuda")]
fn auto_device() -> Device {
    if candle_core::utils::cuda_is_available() {
        if let Ok(device) = Device::new_cuda(0) {
            return device;
        }
    }
    Device::Cpu
}

#[cfg(not(feature = "cuda"))]
fn auto_device() -> Device {
    Device::Cpu
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device> {
    let device = Device::new_cuda(ordinal).map_err(|e| {
        Error::Usage(format!(
            "cannot open CUDA device {ordinal}: {e}; check `nvidia-smi`, or use device \"cpu\""
        ))
    })?;
    gpu::keep_freed_memory(&device)?;
    Ok(device)
}

/// The GPU's name, e.g. `NVIDIA H100 80GB HBM3`; `None` on the CPU.
pub fn gpu_name(device: &Device) -> Option<String> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cuda) = device {
        return cuda.cuda_stream().context().name().ok();
    }
    let _ = device;
    None
}

/// The most GPU memory in use at once since the last [`reset_gpu_peak_memory`], in bytes, as
/// the device's stream-ordered memory pool counts it (candle allocates from it); `None` on the
/// CPU.
pub fn gpu_peak_memory(device: &Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(_) = device {
        return gpu::pool_attribute(device, gpu::USED_MEM_HIGH).ok();
    }
    let _ = device;
    None
}

/// Starts a new [`gpu_peak_memory`] measurement; nothing on the CPU.
///
/// # Errors
/// The driver refused.
pub fn reset_gpu_peak_memory(device: &Device) -> Result<()> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(_) = device {
        return gpu::set_pool_attribute(device, gpu::USED_MEM_HIGH, 0);
    }
    let _ = device;
    Ok(())
}

/// The device's default memory pool, which candle's allocations come from.
#[cfg(feature = "cuda")]
mod gpu {
    use candle_core::cuda::cudarc::driver::{result::mem_pool, sys};
    use candle_core::Device;

    use crate::{Error, Result};

    pub const USED_MEM_HIGH: sys::CUmemPool_attribute =
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
    const RELEASE_THRESHOLD: sys::CUmemPool_attribute =
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;

    fn pool(device: &Device) -> Result<sys::CUmemoryPool> {
        let Device::Cuda(cuda) = device else {
            return Err(Error::Usage("not a CUDA device".into()));
        };
        let cu_device = cuda.cuda_stream().context().cu_device();
        // SAFETY: the device handle comes from a live context.
        unsafe { candle_core::cuda::cudarc::driver::result::device::get_mem_pool(cu_device) }
            .map_err(driver_error)
    }

    fn driver_error(e: impl std::fmt::Display) -> Error {
        Error::Usage(format!("CUDA driver: {e}"))
    }

    pub fn pool_attribute(device: &Device, attr: sys::CUmemPool_attribute) -> Result<u64> {
        let pool = pool(device)?;
        let mut value = 0u64;
        // SAFETY: the pool is valid; both attributes used here are cuuint64_t.
        unsafe { mem_pool::get_attribute(pool, attr, (&mut value as *mut u64).cast()) }
            .map_err(driver_error)?;
        Ok(value)
    }

    pub fn set_pool_attribute(
        device: &Device,
        attr: sys::CUmemPool_attribute,
        mut value: u64,
    ) -> Result<()> {
        let pool = pool(device)?;
        // SAFETY: as in `pool_attribute`.
        unsafe { mem_pool::set_attribute(pool, attr, (&mut value as *mut u64).cast()) }
            .map_err(driver_error)
    }

    /// Freed blocks stay in the pool instead of going back to the driver at every
    /// synchronization: a training step allocates and frees the same sizes again and again,
    /// and re-mapping them each step is what PyTorch's caching allocator avoids too.
    pub fn keep_freed_memory(device: &Device) -> Result<()> {
        set_pool_attribute(device, RELEASE_THRESHOLD, u64::MAX)
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device> {
    Err(Error::Usage(format!(
        "device \"cuda:{ordinal}\": this fedpref was built without CUDA; build one with \
         `cargo xtask build --cuda` (see README, \"GPU\"), or use device \"cpu\" or \"auto\""
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_or_say_what_is_accepted() {
        assert!(select_device("cpu").unwrap().is_cpu());
        let err = select_device("tpu").unwrap_err().to_string();
        assert!(err.contains("auto, cpu, cuda:N"), "{err}");
        let err = select_device("cuda:x").unwrap_err().to_string();
        assert!(err.contains("cuda:0"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cpu_build_asked_for_cuda_says_how_to_build_one() {
        let err = select_device("cuda:0").unwrap_err().to_string();
        assert!(err.contains("cargo xtask build --cuda"), "{err}");
        assert!(select_device("auto").unwrap().is_cpu());
    }
}

#[cfg(test)]
mod cross_device_tests;

//! CPU start-up settings for fast f32 training ([`init_cpu`]), per docs/performance.md:
//! - flush-to-zero / denormals-are-zero in the MXCSR of every computing thread (the calling
//!   thread, rayon's global pool used by gemm and the custom ops, and candle's barrier-pool
//!   workers for elementwise ops), so tiny activations and
//!   gradients never take the slow denormal path;
//! - glibc `mallopt`: a high `M_MMAP_THRESHOLD` (its 32 MiB maximum) and `M_TRIM_THRESHOLD`, so
//!   large tensors are reused from the heap instead of being mmapped, page-faulted and zeroed
//!   on every op (one layer's step went 451 -> 236 ms with this).
//!
//! Call once at start-up, before the first tensor op, from the main thread.

/// MXCSR flush-to-zero (bit 15) and denormals-are-zero (bit 6).
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

/// Reads the calling thread's MXCSR (0 off x86_64).
pub fn mxcsr() -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores the 32-bit MXCSR into the valid, aligned u32 `csr`.
        unsafe {
            std::arch::asm!("stmxcsr [{0}]", in(reg) &mut csr as *mut u32, options(nostack, preserves_flags));
        }
        csr
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Sets FTZ and DAZ on the calling thread.
pub fn set_flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    {
        let csr = mxcsr() | FTZ_DAZ;
        // SAFETY: ldmxcsr loads a valid MXCSR value (the current one with two mode bits set;
        // no reserved bit is touched) from a valid, aligned u32.
        unsafe {
            std::arch::asm!("ldmxcsr [{0}]", in(reg) &csr as *const u32, options(nostack, readonly, preserves_flags));
        }
    }
}

/// True when FTZ and DAZ are both set on the calling thread (always false off x86_64).
pub fn flush_denormals_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        mxcsr() & FTZ_DAZ == FTZ_DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Start-up settings for CPU training: FTZ/DAZ on this thread and on every rayon worker, and
/// the allocator thresholds. Idempotent.
///
/// Unless `CANDLE_NUM_THREADS` is set, it also sets it to 1 (must run before candle's first
/// elementwise op, which creates candle's "barrier pool"): on 2 cores, candle's extra
/// elementwise worker competes with rayon's gemm threads and the caller spins waiting for it.
/// Measured on the 2-core machine, LoRA train step (4 x 256 tokens): 9.5-9.6 s with the pool,
/// 8.4-8.6 s without, in alternating runs. gemm and the custom ops still use all cores.
pub fn init_cpu() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    set_flush_denormals();
    // gemm and the custom ops run on rayon's global pool; candle's elementwise ops on its own
    // "barrier pool" workers (the caller takes part too).
    rayon::broadcast(|_| set_flush_denormals());
    candle_core::utils::barrier_pool().execute(|_| set_flush_denormals());
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator parameters; it is called before heavy
    // allocation and with values inside the documented ranges (the mmap threshold's maximum
    // on 64-bit is 32 MiB).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_cpu_flushes_denormals_on_this_thread_and_rayon_workers() {
        // A fresh thread, so other tests keep IEEE semantics on theirs.
        std::thread::spawn(|| {
            init_cpu();
            if cfg!(target_arch = "x86_64") {
                assert!(flush_denormals_enabled());
                let tiny = std::hint::black_box(f32::MIN_POSITIVE);
                assert_eq!(tiny / 4.0, 0.0, "a denormal result must flush to zero");
                let all: Vec<bool> = rayon::broadcast(|_| flush_denormals_enabled());
                assert!(all.iter().all(|&b| b), "{all:?}");
                let seen = std::sync::Mutex::new(Vec::new());
                candle_core::utils::barrier_pool().execute(|tid| {
                    seen.lock().unwrap().push((tid, flush_denormals_enabled()));
                });
                let seen = seen.into_inner().unwrap();
                assert_eq!(
                    seen.len(),
                    candle_core::utils::barrier_pool().n_workers() + 1
                );
                assert!(seen.iter().all(|(_, b)| *b), "{seen:?}");
            }
        })
        .join()
        .unwrap();
    }
}

//! `x W^T` for a handful of rows `x` (`(m, k)`, `m <= FEW_ROWS`) against a frozen weight `W`
//! (`(n, k)`), the shape of every projection while decoding.
//!
//! The gemm crate packs `W` into panels before its microkernels run; at decode shapes (8 rows,
//! `n, k` in the hundreds to the vocabulary) that packing was half the profile (perf, SmolLM2
//! decode: 51 % in `gemm_common`'s packing, 16 % in its kernels) and every token re-packs every
//! weight. The floor there is reading `W` once: [`few_rows_nt`] walks `W` row by row, and while
//! a row is in L1 takes its dot product with every row of `x`. Work is split over output
//! columns, so each value is computed by one thread in one fixed order: the result does not
//! depend on the thread count. [`few_rows_nt_plain`] is the twin the tests compare it with.

use rayon::prelude::*;

/// Up to this many rows take [`few_rows_nt`]; more go to the gemm crate, whose packing pays
/// for itself once it is shared by enough rows.
pub const FEW_ROWS: usize = 16;

/// Independent partial sums per dot product: wide enough for AVX-512 (two registers) and
/// enough chains in flight to hide the add latency on narrower vector units.
const LANES: usize = 32;

/// Output columns one rayon task computes (a few KiB to a few hundred KiB of `W`).
const COLUMNS_PER_TASK: usize = 64;

/// `dst (m, n) = x (m, k) W^T`, `W` given row-major `(n, k)`.
///
/// # Panics
/// If the slices do not hold `m * k` and `n * k` values (callers check shapes first).
pub fn few_rows_nt(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    assert_eq!(x.len(), m * k, "few_rows_nt: x holds {} values, not {m}x{k}", x.len());
    assert_eq!(w.len(), n * k, "few_rows_nt: W holds {} values, not {n}x{k}", w.len());
    // Columns-major result while computing, so each task writes one contiguous block.
    let mut by_column = vec![0f32; n * m];
    if k == 0 || m == 0 {
        return by_column;
    }
    by_column
        .par_chunks_mut(COLUMNS_PER_TASK * m)
        .zip(w.par_chunks(COLUMNS_PER_TASK * k))
        .for_each(|(out, w_block)| {
            for (out_col, w_row) in out.chunks_exact_mut(m).zip(w_block.chunks_exact(k)) {
                for (o, x_row) in out_col.iter_mut().zip(x.chunks_exact(k)) {
                    *o = dot(x_row, w_row);
                }
            }
        });
    transpose(&by_column, n, m)
}

/// `dst (m, n) = x (m, k) W^T` by the definition, one sequential sum per value.
pub fn few_rows_nt_plain(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut dst = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            dst[i * n + j] = (0..k).map(|l| x[i * k + l] * w[j * k + l]).sum();
        }
    }
    dst
}

/// `(rows, cols)` row-major to `(cols, rows)` row-major.
fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut dst = vec![0f32; src.len()];
    for (r, row) in src.chunks_exact(cols).enumerate() {
        for (c, v) in row.iter().enumerate() {
            dst[c * rows + r] = *v;
        }
    }
    dst
}

/// `a . b` in [`LANES`] interleaved partial sums, reduced in a fixed order. The same
/// operations run whichever vector unit executes them (no fused multiply-add), so the value
/// is the same on every x86 machine.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { dot_avx512(a, b) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

/// The portable body of [`dot`]; inlined into each target-feature wrapper so the compiler
/// vectorizes it for that unit.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (a_body, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let (b_body, b_tail) = b.split_at(a_body.len());
    for (ca, cb) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += ca[l] * cb[l];
        }
    }
    // Pairwise reduction of the lanes, then the tail in order.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    a_tail
        .iter()
        .zip(b_tail)
        .fold(acc[0], |sum, (x, y)| sum + x * y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) (an LCG), so failures reproduce.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The float64 value of every entry, against which both f32 paths are held.
    fn reference(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut dst = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                dst[i * n + j] = (0..k)
                    .map(|l| f64::from(x[i * k + l]) * f64::from(w[j * k + l]))
                    .sum();
            }
        }
        dst
    }

    #[test]
    fn matches_plain_twin_and_float64_reference_across_shapes() {
        // Sizes around the lane width and the task width, decode's 8 rows, a lone row.
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 7, 31),
            (8, 65, 32),
            (8, 130, 577),
            (16, 3, 1536),
            (3, 200, 64),
        ] {
            let x = values(m * k, 1 + m as u64);
            let w = values(n * k, 100 + n as u64);
            let fast = few_rows_nt(&x, &w, m, n, k);
            let plain = few_rows_nt_plain(&x, &w, m, n, k);
            let exact = reference(&x, &w, m, n, k);
            // Rounding in an f32 sum of k random-signed terms grows like sqrt(k) eps |partial
            // sums| (partial sums here stay below sqrt(k)): 4e-6 sqrt(k) is several times that
            // for either order, and a wrong index or a dropped tail is off by ~0.1 or more.
            let tol = 4e-6 * (k as f64).sqrt().max(1.0);
            for ((f, p), e) in fast.iter().zip(&plain).zip(&exact) {
                assert!((f64::from(*f) - e).abs() < tol, "{m}x{n}x{k}: {f} vs {e}");
                assert!((f64::from(*p) - e).abs() < tol, "{m}x{n}x{k}: {p} vs {e}");
            }
        }
    }

    #[test]
    fn same_bits_on_one_thread_and_many() {
        let (m, n, k) = (8, 300, 576);
        let x = values(m * k, 7);
        let w = values(n * k, 8);
        let many = few_rows_nt(&x, &w, m, n, k);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| few_rows_nt(&x, &w, m, n, k));
        assert_eq!(
            many.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            one.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn every_vector_unit_gives_the_same_bits() {
        let (a, b) = (values(1000, 3), values(1000, 4));
        let portable = dot_lanes(&a, &b);
        assert_eq!(dot(&a, &b).to_bits(), portable.to_bits());
    }
}

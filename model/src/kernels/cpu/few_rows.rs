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

/// Partial sums per dot product: one AVX-512 register, two AVX2 ones.
const LANES: usize = 16;

/// Rows of `x` whose dot products with one row of `W` run together, so each chunk of `W` is
/// loaded once for all of them; with [`LANES`] that is 8 (AVX2) or 4 (AVX-512) independent
/// chains in flight, enough to hide the latency of a fused multiply-add.
const ROW_TILE: usize = 4;

/// Output columns one rayon task computes (a few KiB to a few hundred KiB of `W`).
const COLUMNS_PER_TASK: usize = 64;

/// `dst (m, n) = x (m, k) W^T`, `W` given row-major `(n, k)`.
///
/// # Panics
/// If the slices do not hold `m * k` and `n * k` values (callers check shapes first).
pub fn few_rows_nt(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    assert_eq!(
        x.len(),
        m * k,
        "few_rows_nt: x holds {} values, not {m}x{k}",
        x.len()
    );
    assert_eq!(
        w.len(),
        n * k,
        "few_rows_nt: W holds {} values, not {n}x{k}",
        w.len()
    );
    // Columns-major result while computing, so each task writes one contiguous block.
    let mut by_column = vec![0f32; n * m];
    if k == 0 || m == 0 {
        return by_column;
    }
    let unit = VectorUnit::detect();
    by_column
        .par_chunks_mut(COLUMNS_PER_TASK * m)
        .zip(w.par_chunks(COLUMNS_PER_TASK * k))
        .for_each(|(out, w_block)| unit.block(x, w_block, out, k));
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

/// The widest vector unit this CPU has that a dot product here uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VectorUnit {
    Avx512,
    Avx2,
    Portable,
}

impl VectorUnit {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// `out (columns, m)`: the dot product of every row of `w_block` (`(columns, k)`) with
    /// every row of `x` (`(m, k)`).
    fn block(self, x: &[f32], w_block: &[f32], out: &mut [f32], k: usize) {
        match self {
            // SAFETY: `detect` found the unit on this CPU.
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => unsafe { block_avx512(x, w_block, out, k) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => unsafe { block_avx2(x, w_block, out, k) },
            _ => block_with(x, w_block, out, k, dots_portable),
        }
    }
}

/// `out (columns, m)` with one dot-product kernel: `dots(rows, w_row, out)` fills `out[r]` with
/// `rows[r] . w_row` for up to [`ROW_TILE`] rows at once.
#[inline(always)]
fn block_with(
    x: &[f32],
    w_block: &[f32],
    out: &mut [f32],
    k: usize,
    dots: impl Fn(&[&[f32]], &[f32], &mut [f32]),
) {
    let rows: Vec<&[f32]> = x.chunks_exact(k).collect();
    let m = rows.len();
    for (out_col, w_row) in out.chunks_exact_mut(m).zip(w_block.chunks_exact(k)) {
        for (tile, out_tile) in rows.chunks(ROW_TILE).zip(out_col.chunks_mut(ROW_TILE)) {
            dots(tile, w_row, out_tile);
        }
    }
}

/// Calls `$dots::<R>` with the tile as an array of its exact length `R`, so the kernel's
/// accumulators are a fixed set of registers.
macro_rules! by_tile_length {
    ($dots:ident, $rows:expr, $w:expr, $out:expr) => {
        match $rows.len() {
            4 => $dots::<4>(
                $rows.try_into().unwrap_or_else(|_| unreachable!()),
                $w,
                $out,
            ),
            3 => $dots::<3>(
                $rows.try_into().unwrap_or_else(|_| unreachable!()),
                $w,
                $out,
            ),
            2 => $dots::<2>(
                $rows.try_into().unwrap_or_else(|_| unreachable!()),
                $w,
                $out,
            ),
            _ => {
                for (row, o) in $rows.iter().zip($out.chunks_mut(1)) {
                    $dots::<1>(&[*row], $w, o);
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(x: &[f32], w_block: &[f32], out: &mut [f32], k: usize) {
    // SAFETY (the kernel calls): the caller checked AVX-512F.
    block_with(x, w_block, out, k, |rows, w, out| unsafe {
        by_tile_length!(dots_avx512, rows, w, out)
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(x: &[f32], w_block: &[f32], out: &mut [f32], k: usize) {
    // SAFETY (the kernel calls): the caller checked AVX2 and FMA.
    block_with(x, w_block, out, k, |rows, w, out| unsafe {
        by_tile_length!(dots_avx2, rows, w, out)
    });
}

/// `out[r] = rows[r] . w` (at most [`ROW_TILE`] rows), each as [`LANES`] interleaved fused
/// multiply-add chains (lane `l` sums the products at `l, l + LANES, ...`) reduced by
/// [`reduce`]. A chunk of `w` is loaded once for all the rows. Each unit computes exactly
/// these operations, so every unit gives the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn dots_avx512<const R: usize>(rows: &[&[f32]; R], w: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::{
        _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };
    const { assert!(LANES == 16) };
    let body = w.len() - w.len() % LANES;
    let mut acc = [_mm512_setzero_ps(); R];
    for i in (0..body).step_by(LANES) {
        // SAFETY: i + LANES <= body <= len of w and of every row (all k long).
        let vw = unsafe { _mm512_loadu_ps(w.as_ptr().add(i)) };
        for (acc, row) in acc.iter_mut().zip(rows) {
            // SAFETY: as above.
            *acc = _mm512_fmadd_ps(unsafe { _mm512_loadu_ps(row.as_ptr().add(i)) }, vw, *acc);
        }
    }
    for ((acc, row), o) in acc.iter().zip(rows).zip(out) {
        let mut lanes = [0f32; LANES];
        // SAFETY: lanes holds LANES = 16 values.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *acc) };
        *o = reduce(lanes, &row[body..], &w[body..]);
    }
}

/// [`dots_avx512`] on AVX2 registers (two per row).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dots_avx2<const R: usize>(rows: &[&[f32]; R], w: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::{
        _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    const { assert!(LANES == 16) };
    let body = w.len() - w.len() % LANES;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for i in (0..body).step_by(LANES) {
        // SAFETY: i + LANES <= body <= len of w and of every row (all k long).
        let vw = unsafe {
            [
                _mm256_loadu_ps(w.as_ptr().add(i)),
                _mm256_loadu_ps(w.as_ptr().add(i + 8)),
            ]
        };
        for (acc, row) in acc.iter_mut().zip(rows) {
            for h in 0..2 {
                // SAFETY: as above.
                let vx = unsafe { _mm256_loadu_ps(row.as_ptr().add(i + 8 * h)) };
                acc[h] = _mm256_fmadd_ps(vx, vw[h], acc[h]);
            }
        }
    }
    for ((acc, row), o) in acc.iter().zip(rows).zip(out) {
        let mut lanes = [0f32; LANES];
        // SAFETY: lanes holds LANES = 16 values.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[1]);
        }
        *o = reduce(lanes, &row[body..], &w[body..]);
    }
}

/// [`dots_avx512`] in scalar code: the plain twin of the vector units and the path of CPUs
/// without them.
fn dots_portable(rows: &[&[f32]], w: &[f32], out: &mut [f32]) {
    let body = w.len() - w.len() % LANES;
    for (row, o) in rows.iter().zip(out) {
        let mut lanes = [0f32; LANES];
        for (cx, cw) in row[..body]
            .chunks_exact(LANES)
            .zip(w[..body].chunks_exact(LANES))
        {
            for l in 0..LANES {
                lanes[l] = cx[l].mul_add(cw[l], lanes[l]);
            }
        }
        *o = reduce(lanes, &row[body..], &w[body..]);
    }
}

/// The lanes summed pairwise (`l += l + width` for halving widths), then the tail's products
/// fused in order.
#[inline(always)]
fn reduce(mut lanes: [f32; LANES], a_tail: &[f32], b_tail: &[f32]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
    }
    a_tail
        .iter()
        .zip(b_tail)
        .fold(lanes[0], |sum, (x, y)| x.mul_add(*y, sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) (an LCG), so failures reproduce.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
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
        let (m, n, k) = (5, 70, 1000);
        let x = values(m * k, 3);
        let w = values(n * k, 4);
        let bits = |unit: VectorUnit| {
            let mut out = vec![0f32; n * m];
            unit.block(&x, &w, &mut out, k);
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let portable = bits(VectorUnit::Portable);
        let here = VectorUnit::detect();
        // Say which unit was compared, so a machine without one does not pass silently.
        eprintln!("vector unit here: {here:?}");
        assert_eq!(bits(here), portable);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            assert_eq!(bits(VectorUnit::Avx2), portable);
        }
    }
}

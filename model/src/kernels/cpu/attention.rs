//! Causal grouped-query attention core, `softmax(scale q k^T + causal mask) v`, as one candle
//! custom op with a hand-written backward ([`causal_attention`]) and its composed twin
//! ([`causal_attention_plain`]).
//!
//! Shapes: `q` `(batch, heads, seq, d)`, `k`/`v` `(batch, kv_heads, kv_len, d)` with
//! `kv_len >= seq` (the queries are the last `seq` positions, as with a KV cache); output
//! `(batch, seq, heads, d)`, ready to be flattened to `(batch, seq, heads * d)` without a copy.
//! Query head `h` reads KV head `h / (heads / kv_heads)` in place: no repeated K/V copies.
//!
//! Per (batch, head) and block of queries the forward computes `S = scale Q K^T` against the
//! keys the block can see, the masked row softmax `P` and `O = P V`, keeping only the row
//! log-sum-exp. The backward recomputes `P` from it and forms
//! `dV = P^T dO`, `dS = P o (dO V^T - rowsum(dO o O))`, `dQ = scale dS K`, `dK = scale dS^T Q`
//! (the standard attention backward), parallel over (batch, KV head) with rayon. docs/performance.md
//! measured the composed version at 3-4x PyTorch's time; it stays as the plain twin and the
//! path for f64 (finite-difference tests) and non-CPU devices.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::storage::{contiguous_f32, host_f32};
use crate::kernels::chunked_attention::{causal_attention_chunked, QUERY_BLOCK as QUERY_BLOCK_GPU};
use crate::kernels::host_constants::host_constant;
use crate::Result;

/// The op's name in errors.
const OP: &str = "causal-attention";

/// Queries per block: each block is multiplied with only the keys its last query can see, so
/// the causal mask's upper triangle costs no work beyond the blocks on the diagonal (at 256
/// positions, 62% of the full square's matmul work).
const QUERY_BLOCK: usize = 64;

/// Keys that the later queries of one batch row must not see, on top of the causal mask:
/// queries at or after position `query_from` ignore keys `key_from..key_to`. A shared-prefix
/// row (prompt, first answer, second answer) hides the first answer from the second; the
/// default hides nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HiddenKeys {
    /// First query position the rule applies to.
    pub query_from: usize,
    /// First hidden key.
    pub key_from: usize,
    /// One past the last hidden key.
    pub key_to: usize,
}

impl HiddenKeys {
    /// The keys hidden from the query at `position`, clipped to the `visible` causal prefix.
    fn for_query(&self, position: usize, visible: usize) -> std::ops::Range<usize> {
        if position < self.query_from {
            return 0..0;
        }
        self.key_from.min(visible)..self.key_to.min(visible)
    }

    /// Row `row`'s rule in `hidden` (nothing hidden without one).
    fn of_row(hidden: &[HiddenKeys], row: usize) -> HiddenKeys {
        hidden.get(row).copied().unwrap_or_default()
    }
}

/// Row softmax over the last dimension. On the CPU (f64 tests, half precision) from candle ops
/// with backward passes (candle-nn's fused softmax has none), half precision exponentiated and
/// summed in f32 and cast back, as PyTorch's attention does; elsewhere
/// [`crate::kernels::cuda::softmax::softmax_last_dim`].
fn softmax_last_dim(scores: &Tensor) -> Result<Tensor> {
    if !scores.device().is_cpu() {
        // One fused kernel (accumulating bf16 in f32) with a hand-written backward.
        return crate::kernels::cuda::softmax::softmax_last_dim(scores);
    }
    let dtype = scores.dtype();
    let scores = match dtype {
        DType::BF16 | DType::F16 => scores.to_dtype(DType::F32)?,
        _ => scores.clone(),
    };
    let max = scores.max_keepdim(D::Minus1)?.detach();
    let e = scores.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?
        .to_dtype(dtype)?)
}

/// Composed twin: the same attention from candle ops with backward passes; `hidden` (one rule
/// per batch row, or empty) hides keys as [`HiddenKeys`] says.
///
/// # Errors
/// Shape errors.
pub fn causal_attention_plain(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    hidden: &[HiddenKeys],
) -> Result<Tensor> {
    let (b, nh, s, d) = q.dims4()?;
    let (_, nkv, t, _) = k.dims4()?;
    let group = nh / nkv;
    let offset = t - s;
    let rows = if hidden.is_empty() { 1 } else { b };
    let mut key = vec![s, t, rows];
    key.extend(
        hidden
            .iter()
            .flat_map(|h| [h.query_from, h.key_from, h.key_to]),
    );
    let mask = host_constant("causal-mask", &key, q.dtype(), q.device(), || {
        let mut mask = Vec::with_capacity(rows * s * t);
        for row in 0..rows {
            let rule = HiddenKeys::of_row(hidden, row);
            for i in 0..s {
                let visible = offset + i + 1;
                let hidden = rule.for_query(offset + i, visible);
                mask.extend((0..t).map(|j| {
                    if j >= visible || hidden.contains(&j) {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                }));
            }
        }
        Ok(Tensor::from_vec(mask, (rows, 1, 1, s, t), &Device::Cpu)?)
    })?;
    // (b, nh, s, d) -> (b, nkv, group * s, d): the heads of one KV group are adjacent.
    // Scaling q (b, heads, s, d) is cheaper than scaling the (s, t) scores.
    let qg = (q.contiguous()? * scale)?.reshape((b, nkv, group * s, d))?;
    let scores = qg
        .matmul(&k.t()?)?
        .reshape((b, nkv, group, s, t))?
        .broadcast_add(&mask)?;
    let p = softmax_last_dim(&scores)?.reshape((b, nkv, group * s, t))?;
    let y = p.matmul(&v.contiguous()?)?.reshape((b, nh, s, d))?;
    Ok(y.transpose(1, 2)?.contiguous()?)
}

/// Causal GQA attention over a left-padded batch (generation): row `r` of the keys starts at
/// column `left_pads[r]`; queries never see padding keys (a padding query sees only itself, to
/// stay finite). Composed ops, no custom backward: used without gradients.
///
/// # Errors
/// Shape errors.
pub fn causal_attention_left_padded(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    left_pads: &[usize],
) -> Result<Tensor> {
    let (b, nh, s, d) = q.dims4()?;
    let (_, nkv, t, _) = k.dims4()?;
    let group = nh / nkv;
    let offset = t - s;
    let key: Vec<usize> = [s, t].iter().chain(left_pads).copied().collect();
    let mask = host_constant("left-padded-mask", &key, q.dtype(), q.device(), || {
        let mut mask = Vec::with_capacity(b * s * t);
        for &pad in left_pads.iter().take(b) {
            for i in 0..s {
                let qpos = offset + i;
                for j in 0..t {
                    let visible = (j <= qpos && j >= pad) || (qpos < pad && j == qpos);
                    mask.push(if visible { 0f32 } else { f32::NEG_INFINITY });
                }
            }
        }
        Ok(Tensor::from_vec(mask, (b, 1, 1, s, t), &Device::Cpu)?)
    })?;
    let qg = (q.contiguous()? * scale)?.reshape((b, nkv, group * s, d))?;
    let scores = qg
        .matmul(&k.contiguous()?.t()?)?
        .reshape((b, nkv, group, s, t))?
        .broadcast_add(&mask)?;
    let p = softmax_last_dim(&scores)?.reshape((b, nkv, group * s, t))?;
    let y = p.matmul(&v.contiguous()?)?.reshape((b, nh, s, d))?;
    Ok(y.transpose(1, 2)?.contiguous()?)
}

/// Causal GQA attention, with `hidden` keys per batch row (empty: none); the custom op for
/// f32 on the CPU, the chunked form ([`crate::kernels::chunked_attention`]) on other devices,
/// the plain twin otherwise.
///
/// # Errors
/// Shape errors (`heads` not a multiple of `kv_heads`, `kv_len < seq`, mismatched dims).
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    hidden: &[HiddenKeys],
) -> Result<Tensor> {
    let (b, nh, s, d) = q.dims4()?;
    let (bk, nkv, t, dk) = k.dims4()?;
    let fast = q.device().is_cpu()
        && q.dtype() == DType::F32
        && k.dtype() == DType::F32
        && v.dtype() == DType::F32
        && bk == b
        && dk == d
        && v.dims() == k.dims()
        && nkv > 0
        && nh % nkv == 0
        && t >= s;
    if !q.device().is_cpu() {
        return causal_attention_chunked(q, k, v, scale, hidden, QUERY_BLOCK_GPU);
    }
    if !fast {
        return causal_attention_plain(q, k, v, scale, hidden);
    }
    let op = CausalAttention {
        scale: scale as f32,
        hidden: hidden.to_vec(),
        lse: Mutex::new(Vec::new()),
    };
    Ok(q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)?)
}

struct CausalAttention {
    scale: f32,
    /// Keys hidden per batch row (empty: none).
    hidden: Vec<HiddenKeys>,
    /// Row log-sum-exp of the forward, `(batch, heads, seq)`, read by the backward.
    lse: Mutex<Vec<f32>>,
}

/// `dst (m, n) [+]= alpha * lhs (m, k) rhs (k, n)`, every operand given by pointer and
/// (row, column) strides, single-threaded (parallelism is over heads).
///
/// # Safety
/// Each pointer must address every element its strides reach for the given sizes, and `dst`
/// must not alias `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const f32,
    rhs_rs: isize,
    rhs_cs: isize,
    alpha: f32,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs,
        lhs_rs,
        rhs,
        rhs_cs,
        rhs_rs,
        if accumulate { 1.0 } else { 0.0 },
        alpha,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

impl CustomOp3 for CausalAttention {
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
        let (b, nh, s, d) = l1.shape().dims4()?;
        let (_, nkv, t, _) = l2.shape().dims4()?;
        let (q, k, v) = (
            contiguous_f32(OP, "q", s1, l1)?,
            contiguous_f32(OP, "k", s2, l2)?,
            contiguous_f32(OP, "v", s3, l3)?,
        );
        let group = nh / nkv;
        let offset = t - s;
        let scale = self.scale;
        // One task per (batch, head): its output rows (s, d) and row log-sum-exps (s), a block
        // of queries at a time against only the keys the block can see.
        let per_head: Vec<(Vec<f32>, Vec<f32>)> = (0..b * nh)
            .into_par_iter()
            .map(|bh| {
                let (bi, h) = (bh / nh, bh % nh);
                let kvh = h / group;
                let qh = &q[bh * s * d..(bh + 1) * s * d];
                let kv_at = (bi * nkv + kvh) * t * d;
                let (kh, vh) = (&k[kv_at..kv_at + t * d], &v[kv_at..kv_at + t * d]);
                let rule = HiddenKeys::of_row(&self.hidden, bi);
                let mut p = vec![0f32; QUERY_BLOCK.min(s) * t];
                let mut o = vec![0f32; s * d];
                let mut lse = vec![0f32; s];
                for i0 in (0..s).step_by(QUERY_BLOCK) {
                    let rows = QUERY_BLOCK.min(s - i0);
                    let keys = offset + i0 + rows;
                    // SAFETY: p holds (rows, keys) row-major; the block of qh is (rows, d) and
                    // kh (keys, d) row-major, read as K^T (d, keys) through swapped strides.
                    unsafe {
                        mm(
                            rows,
                            keys,
                            d,
                            p.as_mut_ptr(),
                            keys,
                            false,
                            qh[i0 * d..].as_ptr(),
                            d as isize,
                            1,
                            kh.as_ptr(),
                            1,
                            d as isize,
                            scale,
                        )
                    };
                    for r in 0..rows {
                        let i = i0 + r;
                        let row = &mut p[r * keys..(r + 1) * keys];
                        let valid = offset + i + 1;
                        row[rule.for_query(offset + i, valid)].fill(f32::NEG_INFINITY);
                        let max = row[..valid]
                            .iter()
                            .cloned()
                            .fold(f32::NEG_INFINITY, f32::max);
                        let mut sum = 0f32;
                        for x in row[..valid].iter_mut() {
                            *x = (*x - max).exp();
                            sum += *x;
                        }
                        let inv = 1.0 / sum;
                        row[..valid].iter_mut().for_each(|x| *x *= inv);
                        row[valid..].iter_mut().for_each(|x| *x = 0.0);
                        lse[i] = max + sum.ln();
                    }
                    // SAFETY: the block of o is (rows, d); p (rows, keys) and vh's first keys
                    // rows (keys, d) row-major.
                    unsafe {
                        mm(
                            rows,
                            d,
                            keys,
                            o[i0 * d..].as_mut_ptr(),
                            d,
                            false,
                            p.as_ptr(),
                            keys as isize,
                            1,
                            vh.as_ptr(),
                            d as isize,
                            1,
                            1.0,
                        )
                    };
                }
                (o, lse)
            })
            .collect();
        let mut out = vec![0f32; b * s * nh * d];
        let mut lse_all = vec![0f32; b * nh * s];
        for (bh, (o, lse)) in per_head.into_iter().enumerate() {
            let (bi, h) = (bh / nh, bh % nh);
            for i in 0..s {
                let at = ((bi * s + i) * nh + h) * d;
                out[at..at + d].copy_from_slice(&o[i * d..(i + 1) * d]);
            }
            lse_all[bh * s..(bh + 1) * s].copy_from_slice(&lse);
        }
        *self.lse.lock().unwrap_or_else(|e| e.into_inner()) = lse_all;
        Ok((CpuStorage::F32(out), Shape::from((b, s, nh, d))))
    }

    fn bwd(
        &self,
        q_t: &Tensor,
        k_t: &Tensor,
        v_t: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, nh, s, d) = q_t.dims4()?;
        let (_, nkv, t, _) = k_t.dims4()?;
        let group = nh / nkv;
        let offset = t - s;
        let scale = self.scale;
        let (q, k, v) = (host_f32(q_t)?, host_f32(k_t)?, host_f32(v_t)?);
        let (o, g_o) = (host_f32(res)?, host_f32(grad_res)?);
        let lse = self.lse.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if lse.len() != b * nh * s {
            candle_core::bail!("causal-attention: backward without a matching forward");
        }
        let mut dq = vec![0f32; b * nh * s * d];
        let mut dk = vec![0f32; b * nkv * t * d];
        let mut dv = vec![0f32; b * nkv * t * d];
        // One task per (batch, KV head): it owns dK, dV of that head and dQ of its query group;
        // a block of queries at a time against only the keys the block can see.
        dq.par_chunks_mut(group * s * d)
            .zip(dk.par_chunks_mut(t * d))
            .zip(dv.par_chunks_mut(t * d))
            .enumerate()
            .for_each(|(bkv, ((dq_g, dk_h), dv_h))| {
                let bi = bkv / nkv;
                let kh = &k[bkv * t * d..(bkv + 1) * t * d];
                let vh = &v[bkv * t * d..(bkv + 1) * t * d];
                let mut p = vec![0f32; QUERY_BLOCK.min(s) * t];
                let mut dp = vec![0f32; QUERY_BLOCK.min(s) * t];
                let rule = HiddenKeys::of_row(&self.hidden, bi);
                for gi in 0..group {
                    let h = (bkv % nkv) * group + gi;
                    let bh = bi * nh + h;
                    let qh = &q[bh * s * d..(bh + 1) * s * d];
                    // dO and O rows of head h sit in (b, s, nh, d): row stride nh * d.
                    let row0 = (bi * s * nh + h) * d;
                    let (go, oh) = (&g_o[row0..], &o[row0..]);
                    let rs = nh * d;
                    let dq_h = &mut dq_g[gi * s * d..(gi + 1) * s * d];
                    for i0 in (0..s).step_by(QUERY_BLOCK) {
                        let rows = QUERY_BLOCK.min(s - i0);
                        let keys = offset + i0 + rows;
                        let (q_blk, go_blk) = (&qh[i0 * d..], &go[i0 * rs..]);
                        // SAFETY (all mm calls below): p, dp hold (rows, keys) row-major; q_blk
                        // (rows, d), kh, vh (t >= keys rows of d) row-major; go_blk addresses
                        // rows rows of d with stride nh * d inside g_o (row0 + (s - 1) nh d + d
                        // <= b s nh d); dq_h, dk_h, dv_h are this task's own chunks.
                        unsafe {
                            // S = scale Q K^T; dP = dO V^T.
                            mm(
                                rows,
                                keys,
                                d,
                                p.as_mut_ptr(),
                                keys,
                                false,
                                q_blk.as_ptr(),
                                d as isize,
                                1,
                                kh.as_ptr(),
                                1,
                                d as isize,
                                scale,
                            );
                            mm(
                                rows,
                                keys,
                                d,
                                dp.as_mut_ptr(),
                                keys,
                                false,
                                go_blk.as_ptr(),
                                rs as isize,
                                1,
                                vh.as_ptr(),
                                1,
                                d as isize,
                                1.0,
                            );
                        }
                        for r in 0..rows {
                            let i = i0 + r;
                            let valid = offset + i + 1;
                            let l = lse[bh * s + i];
                            let at = i * rs;
                            let di: f32 = (0..d).map(|c| go[at + c] * oh[at + c]).sum();
                            let (prow, dprow) = (
                                &mut p[r * keys..(r + 1) * keys],
                                &mut dp[r * keys..(r + 1) * keys],
                            );
                            for j in 0..valid {
                                let pij = (prow[j] - l).exp();
                                prow[j] = pij;
                                dprow[j] = pij * (dprow[j] - di);
                            }
                            prow[valid..].iter_mut().for_each(|x| *x = 0.0);
                            dprow[valid..].iter_mut().for_each(|x| *x = 0.0);
                            let hidden = rule.for_query(offset + i, valid);
                            prow[hidden.clone()].fill(0.0);
                            dprow[hidden].fill(0.0);
                        }
                        unsafe {
                            // dQ = scale dS K; dK += scale dS^T Q; dV += P^T dO.
                            mm(
                                rows,
                                d,
                                keys,
                                dq_h[i0 * d..].as_mut_ptr(),
                                d,
                                false,
                                dp.as_ptr(),
                                keys as isize,
                                1,
                                kh.as_ptr(),
                                d as isize,
                                1,
                                scale,
                            );
                            mm(
                                keys,
                                d,
                                rows,
                                dk_h.as_mut_ptr(),
                                d,
                                true,
                                dp.as_ptr(),
                                1,
                                keys as isize,
                                q_blk.as_ptr(),
                                d as isize,
                                1,
                                scale,
                            );
                            mm(
                                keys,
                                d,
                                rows,
                                dv_h.as_mut_ptr(),
                                d,
                                true,
                                p.as_ptr(),
                                1,
                                keys as isize,
                                go_blk.as_ptr(),
                                rs as isize,
                                1,
                                1.0,
                            );
                        }
                    }
                }
            });
        let dev = q_t.device();
        Ok((
            Some(Tensor::from_vec(dq, (b, nh, s, d), dev)?),
            Some(Tensor::from_vec(dk, (b, nkv, t, d), dev)?),
            Some(Tensor::from_vec(dv, (b, nkv, t, d), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::testing::max_diff;

    #[test]
    fn fused_equals_plain_twin_forward_and_gradients() {
        let dev = Device::Cpu;
        // GQA 6 heads / 2 KV heads; kv_len > seq exercises the KV-cache offset; more than
        // QUERY_BLOCK queries, the last block partial, exercise the blocking.
        for (s, t) in [(7usize, 7usize), (3, 8), (150, 150), (70, 100)] {
            let q = Var::randn(0f32, 1.0, (2, 6, s, 8), &dev).unwrap();
            let k = Var::randn(0f32, 1.0, (2, 2, t, 8), &dev).unwrap();
            let v = Var::randn(0f32, 1.0, (2, 2, t, 8), &dev).unwrap();
            let probe = Tensor::randn(0f32, 1.0, (2, s, 6, 8), &dev).unwrap();
            let fast = causal_attention(&q, &k, &v, 0.35, &[]).unwrap();
            let plain = causal_attention_plain(&q, &k, &v, 0.35, &[]).unwrap();
            assert_eq!(fast.dims(), &[2, s, 6, 8]);
            assert!(max_diff(&fast, &plain) < 1e-5);
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
            for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
                let d = max_diff(gf.get(x).unwrap(), gp.get(x).unwrap());
                assert!(d < 1e-4, "s={s} t={t} d{name}: {d}");
            }
        }
    }

    #[test]
    fn hidden_keys_match_the_twin_and_a_row_without_them() {
        let dev = Device::Cpu;
        // Row 0 packs a prompt (0..3), answer A (3..5) and answer B (5..8): B's queries do not
        // see A's keys. Row 1 hides nothing.
        let hidden = [
            HiddenKeys {
                query_from: 5,
                key_from: 3,
                key_to: 5,
            },
            HiddenKeys::default(),
        ];
        let q = Var::randn(0f32, 1.0, (2, 6, 8, 8), &dev).unwrap();
        let k = Var::randn(0f32, 1.0, (2, 2, 8, 8), &dev).unwrap();
        let v = Var::randn(0f32, 1.0, (2, 2, 8, 8), &dev).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (2, 8, 6, 8), &dev).unwrap();
        let fast = causal_attention(&q, &k, &v, 0.35, &hidden).unwrap();
        let plain = causal_attention_plain(&q, &k, &v, 0.35, &hidden).unwrap();
        assert!(max_diff(&fast, &plain) < 1e-5);
        let gf = (&fast * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gp = (&plain * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
            let d = max_diff(gf.get(x).unwrap(), gp.get(x).unwrap());
            assert!(d < 1e-4, "d{name}: {d}");
        }
        // Row 0's B queries equal attention over the sequence with A cut out: keys 0..3, 5..8.
        let keep = Tensor::new(&[0u32, 1, 2, 5, 6, 7], &dev).unwrap();
        let cut = |x: &Tensor| x.narrow(0, 0, 1).unwrap().index_select(&keep, 2).unwrap();
        let alone = causal_attention_plain(&cut(&q), &cut(&k), &cut(&v), 0.35, &[]).unwrap();
        let b_rows =
            |x: &Tensor, from: usize| x.narrow(0, 0, 1).unwrap().narrow(1, from, 3).unwrap();
        assert!(max_diff(&b_rows(&fast, 5), &b_rows(&alone, 3)) < 1e-5);
        // Rows that hide nothing are untouched.
        let none = causal_attention(&q, &k, &v, 0.35, &[]).unwrap();
        let row1 = |x: &Tensor| x.narrow(0, 1, 1).unwrap();
        assert_eq!(max_diff(&row1(&fast), &row1(&none)), 0.0);
    }
}

//! Causal grouped-query attention by blocks of queries on any device, keeping no score matrix
//! for backward ([`causal_attention_chunked`]).
//!
//! The composed attention ([`causal_attention_plain`]) keeps each layer's `(batch, heads,
//! seq, seq)` probabilities until backward: on a GPU at 16 x 512 they were most of a LoRA
//! step's memory. Here the forward pass runs the composed attention one block of queries at a
//! time, each against only the keys it can see, without a graph; the backward pass runs each
//! block again with a graph and differentiates it, adding the blocks' key and value gradients
//! (in f32 for half precision). Peak memory is one block's scores and their gradient, whatever the sequence; the
//! price is the attention's forward work once more (what flash attention's backward also pays).
//! The CPU's f32 custom op ([`crate::kernels::cpu::attention`]) does the same with fused
//! loops; this form is the step towards a fused GPU kernel, and the composed attention is the
//! twin its tests compare it with.

use candle_core::{DType, Tensor, Var};

use crate::kernels::attach::{attach, Backward};
use crate::kernels::cpu::attention::{causal_attention_plain, HiddenKeys};
use crate::{Error, Result};

/// Queries per block on a GPU: 128 queries x 2048 keys x 14 heads x batch 8 is 117 MB of f32
/// scores, against 1.9 GB for the whole square.
pub const QUERY_BLOCK: usize = 128;

/// [`causal_attention_plain`] by blocks of `block` queries (same shapes and arguments), with
/// a backward that recomputes each block; one block (`seq <= block`) is the twin itself.
///
/// # Errors
/// Shape errors, a zero `block`.
pub fn causal_attention_chunked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    hidden: &[HiddenKeys],
    block: usize,
) -> Result<Tensor> {
    let (_, _, s, _) = q.dims4()?;
    let (_, _, t, _) = k.dims4()?;
    if block == 0 {
        return Err(Error::Usage(
            "attention blocks must hold at least one query".into(),
        ));
    }
    if s <= block || t < s {
        return causal_attention_plain(q, k, v, scale, hidden);
    }
    let op = ChunkedAttention {
        scale,
        hidden: hidden.to_vec(),
        block,
    };
    let (qd, kd, vd) = (q.detach(), k.detach(), v.detach());
    let blocks = op
        .blocks(s, t)
        .map(|(start, len, visible)| op.block(&qd, &kd, &vd, start, len, visible))
        .collect::<Result<Vec<_>>>()?;
    // Blocks come out (batch, len, heads, d): they join along the sequence.
    attach(&[q, k, v], Tensor::cat(&blocks, 1)?, op)
}

/// The blocks' arguments, kept for backward.
struct ChunkedAttention {
    scale: f64,
    hidden: Vec<HiddenKeys>,
    block: usize,
}

impl ChunkedAttention {
    /// `(first query, queries, keys visible to the last)` of each block, for `s` queries at
    /// the last positions of `t` keys.
    fn blocks(&self, s: usize, t: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        let block = self.block;
        (0..s).step_by(block).map(move |start| {
            let len = block.min(s - start);
            (start, len, t - s + start + len)
        })
    }

    /// One block through the twin: queries `start..start + len` against keys `..visible`.
    fn block(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        start: usize,
        len: usize,
        visible: usize,
    ) -> Result<Tensor> {
        causal_attention_plain(
            &q.narrow(2, start, len)?,
            &k.narrow(2, 0, visible)?,
            &v.narrow(2, 0, visible)?,
            self.scale,
            &self.hidden,
        )
    }
}

impl Backward for ChunkedAttention {
    fn name(&self) -> &'static str {
        "chunked-attention"
    }

    fn backward(
        &self,
        inputs: &[&Tensor],
        _: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Vec<Option<Tensor>>> {
        let [q, k, v] = [inputs[0], inputs[1], inputs[2]].map(Tensor::detach);
        let (s, t) = (q.dim(2)?, k.dim(2)?);
        let mut dq = Vec::new();
        // Key and value gradients add up over blocks in f32 (f64 stays f64).
        let sum_dtype = if k.dtype() == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let mut dk = k.zeros_like()?.to_dtype(sum_dtype)?;
        let mut dv = dk.clone();
        for (start, len, visible) in self.blocks(s, t) {
            let qb = Var::from_tensor(&q.narrow(2, start, len)?)?;
            let kb = Var::from_tensor(&k.narrow(2, 0, visible)?)?;
            let vb = Var::from_tensor(&v.narrow(2, 0, visible)?)?;
            let y = self
                .block(&qb, &kb, &vb, 0, len, visible)
                .map_err(candle_core::Error::wrap)?;
            let g = grad.narrow(1, start, len)?.to_dtype(y.dtype())?;
            let store = (y * g)?.sum_all()?.backward()?;
            let of = |var: &Var| match store.get(var) {
                Some(g) => Ok(g.clone()),
                None => var.zeros_like(),
            };
            dq.push(of(&qb)?);
            let pad = |g: Tensor| g.to_dtype(sum_dtype)?.pad_with_zeros(2, 0, t - visible);
            dk = (dk + pad(of(&kb)?)?)?;
            dv = (dv + pad(of(&vb)?)?)?;
        }
        Ok(vec![
            Some(Tensor::cat(&dq, 2)?),
            Some(dk.to_dtype(k.dtype())?),
            Some(dv.to_dtype(v.dtype())?),
        ])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::Device;

    use super::*;
    use crate::testing::{max_diff, relative_diff};

    /// Largest differences of the output and of the `q`, `k`, `v` gradients between the
    /// chunked attention and its twin, each relative to the twin's largest entry: 2 rows,
    /// 4 query heads on 2 KV heads, 11 queries in blocks of 4, and a shared-prefix rule on the
    /// second row.
    pub(crate) fn chunked_against_twin(device: &Device, dtype: DType) -> [f64; 4] {
        let (b, nh, nkv, s, d) = (2, 4, 2, 11, 8);
        let input = |shape: (usize, usize, usize, usize)| {
            Var::from_tensor(
                &Tensor::randn(0f32, 1.0, shape, device)
                    .and_then(|t| t.to_dtype(dtype))
                    .unwrap(),
            )
            .unwrap()
        };
        let (q, k, v) = (
            input((b, nh, s, d)),
            input((b, nkv, s, d)),
            input((b, nkv, s, d)),
        );
        let hidden = [
            HiddenKeys::default(),
            HiddenKeys {
                query_from: 7,
                key_from: 3,
                key_to: 7,
            },
        ];
        let probe = Tensor::randn(0f32, 1.0, (b, s, nh, d), device)
            .and_then(|t| t.to_dtype(dtype))
            .unwrap();
        let run = |chunked: bool| {
            let y = if chunked {
                causal_attention_chunked(&q, &k, &v, 0.35, &hidden, 4).unwrap()
            } else {
                causal_attention_plain(&q, &k, &v, 0.35, &hidden).unwrap()
            };
            let g = (&y * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let grads = [&q, &k, &v].map(|x| g.get(x).expect("a gradient").clone());
            (y, grads)
        };
        let (y_chunked, g_chunked) = run(true);
        let (y_plain, g_plain) = run(false);
        [
            relative_diff(&y_chunked, &y_plain),
            relative_diff(&g_chunked[0], &g_plain[0]),
            relative_diff(&g_chunked[1], &g_plain[1]),
            relative_diff(&g_chunked[2], &g_plain[2]),
        ]
    }

    #[test]
    fn chunked_attention_equals_the_twin_forward_and_gradients() {
        // bf16: the twin adds the key and value gradients in bf16, the chunks in f32.
        for (dtype, tol) in [(DType::F32, 1e-5), (DType::F64, 1e-12), (DType::BF16, 2e-2)] {
            let diffs = chunked_against_twin(&Device::Cpu, dtype);
            assert!(
                diffs.iter().all(|&d| d < tol),
                "{dtype:?}: output, dq, dk, dv {diffs:?}"
            );
        }
    }

    #[test]
    fn one_block_is_the_twin_and_a_zero_block_is_an_error() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f64, 1.0, (1, 2, 5, 4), &dev).unwrap();
        let k = Tensor::randn(0f64, 1.0, (1, 1, 5, 4), &dev).unwrap();
        let one = causal_attention_chunked(&q, &k, &k, 0.5, &[], 5).unwrap();
        let twin = causal_attention_plain(&q, &k, &k, 0.5, &[]).unwrap();
        assert_eq!(max_diff(&one, &twin), 0.0);
        assert!(causal_attention_chunked(&q, &k, &k, 0.5, &[], 0).is_err());
    }
}

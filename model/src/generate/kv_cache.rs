//! Per-layer key/value cache for incremental decoding ([`crate::generate`]).
//!
//! Each entry holds the RoPE-rotated keys and the values of every position seen so far, both
//! `(batch, kv_heads, positions, head_dim)`.

use candle_core::Tensor;

/// Keys and values of earlier positions, one slot per decoder layer.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }

    /// True before the first forward.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every position from `len` on (a step back, to continue along another path).
    ///
    /// # Errors
    /// Tensor errors.
    pub fn truncate(&mut self, len: usize) -> candle_core::Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            if k.dim(2)? > len {
                *k = k.narrow(2, 0, len)?;
                *v = v.narrow(2, 0, len)?;
            }
        }
        Ok(())
    }

    /// The slot of layer `i`.
    pub fn layer_mut(&mut self, i: usize) -> Option<&mut Option<(Tensor, Tensor)>> {
        self.layers.get_mut(i)
    }
}

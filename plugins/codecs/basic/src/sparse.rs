//! Sparsifying codecs: the k largest magnitudes with their indices (top-k), or k coordinates
//! drawn from the seed both ends share, sent without indices and rescaled (random-k).

use fedpref_plugin_api::{CodecFunction, CodecSpec, PluginError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{check_finite, check_len, kept};

/// The `k = max(1, ⌈fraction·n⌉)` values of largest magnitude (ties to the lower index), as
/// (u32 index, f32 value) pairs in index order: `8k` bytes. Decoding puts zeros elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct TopK {
    /// The share of values kept.
    pub fraction: f64,
}

impl CodecFunction for TopK {
    fn spec(&self) -> CodecSpec {
        CodecSpec {
            lossless: false,
            unbiased: false,
        }
    }

    fn encoded_len(&self, n: u64) -> u64 {
        8 * kept(self.fraction, n)
    }

    fn encode(&self, values: &[f32], _seed: u64) -> Result<Vec<u8>, PluginError> {
        check_finite("top-k", values)?;
        if u32::try_from(values.len()).is_err() {
            return Err(PluginError::invalid_input(
                "top-k: more than 2^32 values cannot be indexed by u32",
            ));
        }
        let k = kept(self.fraction, values.len() as u64) as usize;
        let mut order: Vec<u32> = (0..values.len() as u32).collect();
        // A total order (magnitude down, then index up), so the kept set is well defined.
        let larger = |a: &u32, b: &u32| {
            let (x, y) = (values[*a as usize].abs(), values[*b as usize].abs());
            y.total_cmp(&x).then(a.cmp(b))
        };
        if k < order.len() && k > 0 {
            order.select_nth_unstable_by(k - 1, larger);
        }
        let mut top = order[..k].to_vec();
        top.sort_unstable();
        let mut bytes = Vec::with_capacity(8 * k);
        for &i in &top {
            bytes.extend_from_slice(&i.to_le_bytes());
            bytes.extend_from_slice(&values[i as usize].to_le_bytes());
        }
        Ok(bytes)
    }

    fn decode(&self, bytes: &[u8], n: u64, _seed: u64) -> Result<Vec<f32>, PluginError> {
        check_len("top-k", bytes, self.encoded_len(n), n)?;
        let mut values = vec![0f32; n as usize];
        for pair in bytes.chunks_exact(8) {
            let i = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize;
            let v = f32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]);
            let slot = values.get_mut(i).ok_or_else(|| {
                PluginError::invalid_input(format!("top-k: index {i} of {n} values"))
            })?;
            *slot = v;
        }
        Ok(values)
    }
}

/// `k = max(1, ⌈fraction·n⌉)` coordinates drawn without replacement from the seed, their values
/// sent in draw order (`4k` bytes) and multiplied by `n/k` when decoded, which makes the codec
/// unbiased (each coordinate is drawn with probability `k/n`).
#[derive(Debug, Clone, Copy)]
pub struct RandomK {
    /// The share of values sent.
    pub fraction: f64,
}

impl RandomK {
    /// The coordinates `seed` draws: a partial Fisher-Yates shuffle of `0..n`.
    pub(crate) fn coordinates(&self, n: usize, seed: u64) -> Vec<usize> {
        let k = kept(self.fraction, n as u64) as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = rng.random_range(i..n);
            order.swap(i, j);
        }
        order.truncate(k);
        order
    }
}

impl CodecFunction for RandomK {
    fn spec(&self) -> CodecSpec {
        CodecSpec {
            lossless: false,
            unbiased: true,
        }
    }

    fn encoded_len(&self, n: u64) -> u64 {
        4 * kept(self.fraction, n)
    }

    fn encode(&self, values: &[f32], seed: u64) -> Result<Vec<u8>, PluginError> {
        check_finite("random-k", values)?;
        Ok(self
            .coordinates(values.len(), seed)
            .into_iter()
            .flat_map(|i| values[i].to_le_bytes())
            .collect())
    }

    fn decode(&self, bytes: &[u8], n: u64, seed: u64) -> Result<Vec<f32>, PluginError> {
        check_len("random-k", bytes, self.encoded_len(n), n)?;
        let coordinates = self.coordinates(n as usize, seed);
        let scale = n as f64 / coordinates.len().max(1) as f64;
        let mut values = vec![0f32; n as usize];
        for (&i, v) in coordinates.iter().zip(bytes.chunks_exact(4)) {
            values[i] = (f64::from(f32::from_le_bytes([v[0], v[1], v[2], v[3]])) * scale) as f32;
        }
        Ok(values)
    }
}

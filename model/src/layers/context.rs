//! Per-call forward options ([`ForwardCtx`]): whether the LoRA branch is on, whether LoRA
//! dropout is active (with its seeded generator), and the left padding of a generation batch.
//!
//! Fed by the decoder's adapter switch and training mode; read by every [`crate::layers::linear::Linear`].

use std::sync::Mutex;

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::Rng;

use crate::kernels::cpu::attention::HiddenKeys;
use crate::Result;

/// The layout of a shared-prefix batch (each row a prompt followed by two answers, the second
/// placed at the positions the first started at and blind to it): where each token sits and
/// which keys each row's later queries skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packing {
    /// Position of every token, `(batch * seq)` row-major.
    pub positions: Vec<u32>,
    /// Keys hidden per row.
    pub hidden: Vec<HiddenKeys>,
}

/// Options that travel down one forward pass.
#[derive(Debug, Clone, Copy)]
pub struct ForwardCtx<'a> {
    /// Add the LoRA branches (false: the frozen base model, i.e. the reference model).
    pub adapter: bool,
    /// LoRA dropout generator when training; `None` disables dropout.
    pub dropout_rng: Option<&'a Mutex<StdRng>>,
    /// Left padding of each row of a batch (batched generation): row `r`'s first `left_pads[r]`
    /// columns are padding, its tokens sit at positions `column - left_pads[r]`, and no query
    /// attends to its padding. `None`: every row starts at column 0.
    pub left_pads: Option<&'a [usize]>,
    /// A shared-prefix batch's positions and hidden keys; `None`: row `r`'s column `c` is at
    /// position `c` (after any left padding) and sees every earlier column.
    pub packing: Option<&'a Packing>,
    /// Record no autograd graph: the adapter's weights are read detached, so nothing of this
    /// pass is kept for a backward pass (log-probs that no gradient flows through, as KTO's KL
    /// term).
    pub detached: bool,
}

impl ForwardCtx<'_> {
    /// The next inverted-dropout mask of `n` entries (`0` with probability `p`, else
    /// `1 / (1 - p)`), drawn from the training generator; `None` when not training or `p == 0`.
    pub fn dropout_mask(&self, n: usize, p: f64) -> Option<Vec<f32>> {
        let rng = self.dropout_rng?;
        if p <= 0.0 {
            return None;
        }
        let scale = (1.0 / (1.0 - p)) as f32;
        // A poisoned lock only means another thread panicked mid-draw; the generator state is
        // still a valid generator state.
        let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            (0..n)
                .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale })
                .collect(),
        )
    }

    /// The base model: no adapter, no dropout.
    pub const BASE: ForwardCtx<'static> = ForwardCtx {
        adapter: false,
        dropout_rng: None,
        left_pads: None,
        packing: None,
        detached: false,
    };

    /// Inverted dropout of `x` with probability `p`: zeroes entries with probability `p` and
    /// scales the rest by `1 / (1 - p)`; identity when not training or `p == 0`.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn dropout(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        if !x.device().is_cpu() {
            if self.dropout_rng.is_none() || p <= 0.0 {
                return Ok(x.clone());
            }
            // On a GPU the mask is drawn there, from the device generator that
            // `Decoder::set_training` seeds: a host-drawn mask would cost a copy to the device
            // per projection. floor(u + 1 - p) is 1 with probability 1 - p for u ~ U[0, 1).
            let u = Tensor::rand(0f32, 1f32, x.shape(), x.device())?;
            let mask = ((u + (1.0 - p))?.floor()? * (1.0 / (1.0 - p)))?;
            return Ok((x * mask.to_dtype(x.dtype())?)?);
        }
        let Some(mask) = self.dropout_mask(x.elem_count(), p) else {
            return Ok(x.clone());
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok((x * mask)?)
    }
}

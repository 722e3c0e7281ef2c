//! Custom ops with hand-written backward passes, each beside the plain twin composed of candle
//! ops that its tests compare it with (outputs and gradients):
//!
//! - [`attach`]: a value computed without a graph, attached to its inputs with a hand-written
//!   backward (the pattern of the memory-saving ops below and of checkpointed layers);
//! - [`chunked_head`]: answer-token log-probs by chunks of rows, no `(tokens, vocab)` logits
//!   kept for backward (every device);
//! - [`chunked_attention`]: causal attention by blocks of queries, no score matrix kept for
//!   backward (the path on GPUs);
//! - [`frozen_matmul`]: `x W^T` for a frozen `W` whose backward gives only the input gradient
//!   (gemm on the CPU, cuBLAS on CUDA);
//! - [`cpu`]: fused attention, log-softmax with gather, SwiGLU, LoRA linear, RMSNorm and RoPE on
//!   f32 CPU tensors;
//! - [`cuda`]: softmax and log-softmax that keep only input and output for backward;
//! - [`host_constants`]: small host-built tensors (masks, positions) copied to a device once
//!   per shape.
//!
//! The layers in [`crate::layers`] pick the fast op when the tensors qualify (device, dtype,
//! layout) and the plain twin otherwise.

pub mod attach;
pub mod chunked_attention;
pub mod chunked_head;
pub mod cpu;
pub mod cuda;
pub mod frozen_matmul;
pub mod host_constants;

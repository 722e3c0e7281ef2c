//! Fused CPU kernels for f32 training, row-parallel with rayon; each file holds the custom op,
//! its plain twin and the test that compares them.

pub mod attention;
pub mod few_rows;
pub mod log_softmax;
pub mod lora_linear;
pub mod rms_norm;
pub mod rope;
pub mod storage;
pub mod swiglu;

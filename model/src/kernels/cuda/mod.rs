//! CUDA-side ops. They also run on the CPU, where the tests compare them with their twins.

pub mod rms_norm;
pub mod softmax;

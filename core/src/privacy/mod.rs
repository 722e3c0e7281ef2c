//! Differential privacy: accounting of the subsampled Gaussian mechanism ([`accountant`]).

pub mod accountant;

pub use accountant::{default_orders, RdpAccountant};

//! Differential privacy: its settings ([`settings`]), the accounting of the subsampled Gaussian
//! mechanism ([`accountant`]) and client-level DP-FedAvg ([`client`]: clipping and noise between
//! a round's training and its aggregation).

pub mod accountant;
pub mod client;
pub mod settings;

pub use accountant::{default_orders, poisson_gaussian_epsilon, RdpAccountant};
pub use client::{epsilon_after, privatize, ClientDraw, PrivacyRecord, Privatized, RoundNoise};
pub use settings::{PrivacyMode, PrivacySection};

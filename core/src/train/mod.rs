//! Local preference training: from tokenized examples to client units with cached reference
//! log-probs, and the local loop that turns the global adapter into a client update.

pub mod kl_pairs;
pub mod local;
pub mod optimizer;
pub mod plan;
pub mod private_step;
pub mod reference;
pub mod units;

pub use local::{
    train_client, Dropout, LocalJob, LocalOutcome, LocalSettings, LocalTrainer, OptimizerState,
    StepRecord,
};
pub use private_step::{ExamplePrivacy, StepPrivacy};
pub use reference::{fill_units, ReferenceCache, ReferenceSource};
pub use units::{client_units, Unit};

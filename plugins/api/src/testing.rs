//! Helpers for plugin authors' tests (`src/tests.rs` of a plugin crate), so that every plugin
//! checks the same things the same way:
//!
//! - [`finite_difference`] and [`GradientCheck`]: a loss's gradient against central finite
//!   differences;
//! - [`loss`]: an owned batch that lends a [`LossBatch`](crate::LossBatch), the fixtures the
//!   loss plugins share, and the check that the FFI adapter contains a loss's panic;
//! - [`aggregation`]: an owned round of client updates and the entrywise comparison of
//!   parameter vectors;
//! - [`scorer`]: a host whose local model answers from a script;
//! - [`asset`]: a fetched asset, or a skip that says so (a failure where assets are required);
//! - [`metric`], [`error_of`], [`assert_error`], [`params_error`]: reading the metrics and the
//!   errors of any component.
//!
//! They are plain Rust, not part of the ABI, and panic with a message on a failed check as
//! assertions do; they are meant for tests only.

pub mod aggregation;
mod assets;
mod gradient;
pub mod loss;
mod results;
pub mod scorer;

pub use assets::{asset, assets_dir, REQUIRE_ASSETS};
pub use gradient::{finite_difference, GradientCheck};
pub use results::{assert_error, error_of, metric, params_error, HasMetrics};

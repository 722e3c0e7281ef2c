//! End-to-end tests: the `fedpref` binary over the real plugins built next to it, and over
//! misbehaving fixture plugins (tests/fixtures, built into target/fixtures).
//!
//! Run through `cargo xtask test`, which builds the binary, the plugins and the fixtures first.

mod bench;
mod deploy;
mod eval;
mod faults;
mod federation;
mod plugin_errors;
mod plugins;
mod report;
mod util;

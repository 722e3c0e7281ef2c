//! Integration tests of fedpref-analysis over run directories the tests write themselves
//! (following the layout documented in core/src/run_dir.rs): reading, tables, figures and
//! reports. One binary, so the suite links once.

mod figures;
mod read;
mod report;
mod stats;
mod tables;
mod util;

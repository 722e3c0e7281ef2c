//! The statistics of the report: descriptive summaries, confidence intervals and paired tests.
//!
//! - [`Stat`]: mean ± sample standard deviation of a handful of values (training curves, the
//!   per-round table);
//! - [`Sample`]: one table cell's values, grouped by seed and question;
//! - [`Bootstrap`]: the percentile bootstrap interval of a mean. With several seeds it
//!   resamples on two levels (seeds with replacement, then questions with replacement within
//!   each drawn seed), so the interval carries the spread between training runs as well as the
//!   spread between questions; with one seed it resamples questions only;
//! - [`paired()`]: a method against the baseline on matched (seed, question) pairs: the mean
//!   difference with its paired bootstrap interval and p-value, and the [`wilcoxon`]
//!   signed-rank test on per-question differences with the matched-pairs rank-biserial
//!   correlation as effect size;
//! - [`holm`]: Holm's step-down adjustment of a family of p-values.
//!
//! Every resampling starts from a fixed seed ([`Bootstrap::default`]), so a report is the same
//! bit for bit each time it is written.

mod bootstrap;
mod describe;
mod holm;
pub mod normal;
mod paired;
mod sample;
pub mod wilcoxon;

pub use self::{
    bootstrap::{Bootstrap, Interval},
    describe::{decimals_for, Stat},
    holm::holm,
    paired::{paired, Paired},
    sample::Sample,
    wilcoxon::{wilcoxon, Wilcoxon},
};

//! Progress display: indicatif bars on a terminal, plain log lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes.
#[derive(Debug, Clone)]
pub struct Progress {
    terminal: bool,
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn detect() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Never draws bars (tests, scripts).
    pub fn lines() -> Self {
        Self { terminal: false }
    }

    /// A bar of `len` steps labelled `prefix`; hidden when not on a terminal.
    pub fn bar(&self, len: u64, prefix: &str) -> ProgressBar {
        if !self.terminal {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_owned());
        bar
    }

    /// A line for the user: above the bars on a terminal, a log line otherwise.
    pub fn note(&self, line: &str) {
        if self.terminal {
            indicatif::MultiProgress::new().suspend(|| eprintln!("{line}"));
        } else {
            tracing::info!("{line}");
        }
    }
}

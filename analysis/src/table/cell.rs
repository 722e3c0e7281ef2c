//! A summarized table cell: mean over seeds, its bootstrap interval, the comparison with the
//! baseline and its significance mark, and the cell's text (`0.612 [0.580, 0.641]*`).

use crate::stat::{decimals_for, Interval, Paired, Stat};

/// A summarized cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// Mean over seeds (of each seed's mean over questions), sample std over seeds, and
    /// `n` the number of seeds.
    pub stat: Stat,
    /// 95 % percentile bootstrap interval of the mean, where the layout asks for intervals
    /// and there are two values or more.
    pub interval: Option<Interval>,
    /// Distinct questions (0 when each run gave one value).
    pub questions: usize,
    /// Values behind the cell: (seed, question) scores, or runs.
    pub values: usize,
    /// The comparison with the baseline (none for the baseline itself).
    pub versus: Option<Versus>,
    /// Best of its row within its group.
    pub best: bool,
}

/// A method's comparison with the baseline in one row and group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Versus {
    /// Differences, intervals and tests.
    pub paired: Paired,
    /// The signed-rank p-value after Holm's correction over the methods of the row and group.
    pub p_adjusted: f64,
    /// Set when `p_adjusted` is below [`super::versus::ALPHA`].
    pub mark: Option<Mark>,
}

/// A significant difference from the baseline, in the metric's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Significantly better than the baseline.
    Better,
    /// Significantly worse than the baseline.
    Worse,
}

impl Mark {
    /// `*` or `†`.
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Better => "*",
            Mark::Worse => "†",
        }
    }

    /// `better` or `worse`.
    pub fn word(self) -> &'static str {
        match self {
            Mark::Better => "better",
            Mark::Worse => "worse",
        }
    }
}

impl Cell {
    /// `mean [low, high]` with the interval, else `mean ± std` (or `mean` alone), three
    /// significant digits; no mark.
    pub fn text(&self) -> String {
        match self.interval {
            Some(interval) => interval_text(self.stat.mean, interval),
            None => self.stat.display(),
        }
    }

    /// The significance mark, if any.
    pub fn mark(&self) -> Option<Mark> {
        self.versus.and_then(|v| v.mark)
    }
}

/// `mean [low, high]`, with decimals for three significant digits of the largest of the three.
///
/// ```
/// use fedpref_analysis::{stat::Interval, table::interval_text};
/// let text = interval_text(0.6, Interval { low: 0.5, high: 0.7 });
/// assert_eq!(text, "0.600 [0.500, 0.700]");
/// ```
pub fn interval_text(mean: f64, interval: Interval) -> String {
    let largest = [mean, interval.low, interval.high]
        .into_iter()
        .map(f64::abs)
        .fold(0.0, f64::max);
    let decimals = decimals_for(largest);
    format!(
        "{mean:.decimals$} [{:.decimals$}, {:.decimals$}]",
        interval.low, interval.high
    )
}

//! Every method against the baseline (DPO), per row and column group: the paired comparison on
//! matched seeds and questions ([`crate::stat::paired()`]), Holm's correction over the methods
//! compared in that row and group, and the significance mark.
//!
//! A method is marked when its Holm-adjusted two-sided signed-rank p-value is below
//! [`ALPHA`]: `*` when it is better than the baseline (the rank-biserial correlation points the
//! metric's good way), `†` when worse. The family is the methods of one row and benchmark
//! metric: each cell answers "does this method differ from DPO here?", and the correction keeps
//! the chance of any false mark in that row and group at 5 %. Rows and benchmarks are separate
//! questions and are not corrected against each other.

use super::{build::Samples, Cell, Group, Mark, Versus};
use crate::stat::{holm, paired, Bootstrap};

/// The method the others are compared with.
pub const BASELINE: &str = "dpo";

/// Significance level of the marks (after Holm's correction).
pub const ALPHA: f64 = 0.05;

/// Compares every method with the one at `baseline` in each row and group, filling the cells'
/// [`Cell::versus`]; whether any comparison was made.
pub(super) fn compare(
    groups: &[Group],
    samples: &Samples,
    cells: &mut [Vec<Vec<Option<Cell>>>],
    baseline: usize,
    bootstrap: &Bootstrap,
) -> bool {
    let mut any = false;
    for (row_samples, row_cells) in samples.iter().zip(cells.iter_mut()) {
        for ((group, methods), group_cells) in groups.iter().zip(row_samples).zip(row_cells) {
            let base = &methods[baseline];
            let compared: Vec<(usize, _)> = methods
                .iter()
                .enumerate()
                .filter(|(m, _)| *m != baseline)
                .filter_map(|(m, sample)| Some((m, paired(sample, base, bootstrap)?)))
                .collect();
            let p_values: Vec<f64> = compared.iter().map(|(_, p)| p.wilcoxon.p_value).collect();
            for ((method, paired), p_adjusted) in compared.into_iter().zip(holm(&p_values)) {
                let Some(cell) = group_cells[method].as_mut() else {
                    continue;
                };
                let direction = if (paired.wilcoxon.rank_biserial > 0.0) == group.higher_is_better {
                    Mark::Better
                } else {
                    Mark::Worse
                };
                let significant = p_adjusted < ALPHA && paired.wilcoxon.rank_biserial != 0.0;
                let mark = significant.then_some(direction);
                cell.versus = Some(Versus {
                    paired,
                    p_adjusted,
                    mark,
                });
                any = true;
            }
        }
    }
    any
}

/// The line under a table with comparisons against `baseline` (its label, `DPO`).
pub fn legend(baseline: &str) -> String {
    format!(
        "* better, † worse than {baseline} (two-sided Wilcoxon signed-rank test on the same \
         questions, each question's difference averaged over seeds, or on the same seeds where \
         a run gives one value; p < {ALPHA} after Holm's correction over the methods of each row \
         and benchmark). Differences, their paired bootstrap intervals, p-values and \
         rank-biserial effect sizes are in tables/results.csv"
    )
}

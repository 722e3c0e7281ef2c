//! Holm's step-down adjustment of a family of p-values: it controls the chance of any false
//! "significant" in the family (the family-wise error rate) without assuming independence, and
//! rejects at least what Bonferroni rejects.

/// Holm-adjusted p-values, in the order given: with the `m` p-values sorted ascending,
/// `adjusted(i) = max over j <= i of min(1, (m - j + 1) p(j))` (1-based `i`, `j`).
/// A p-value that is not a number stays one.
///
/// ```
/// let adjusted = fedpref_analysis::stat::holm(&[0.04, 0.01, 0.03]);
/// assert_eq!(adjusted, vec![0.06, 0.03, 0.06]);
/// ```
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![f64::NAN; m];
    let mut running = 0.0f64;
    for (rank, &index) in order.iter().enumerate() {
        let p = p_values[index];
        if p.is_nan() {
            continue;
        }
        running = running.max(((m - rank) as f64 * p).min(1.0));
        adjusted[index] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-15)
    }

    #[test]
    fn by_hand() {
        // Sorted 0.01, 0.03, 0.04: 3 * 0.01 = 0.03; 2 * 0.03 = 0.06; 1 * 0.04 = 0.04, raised
        // to the running maximum 0.06.
        assert!(close(&holm(&[0.04, 0.01, 0.03]), &[0.06, 0.03, 0.06]));
        // A single test is not adjusted; 0.6 is last in order (times 1), above the running 0.04.
        assert_eq!(holm(&[0.2]), vec![0.2]);
        assert!(close(&holm(&[0.6, 0.02]), &[0.6, 0.04]));
        // Large products are capped at 1, and the running maximum carries the cap.
        assert!(close(&holm(&[0.6, 0.7]), &[1.0, 1.0]));
        assert!(holm(&[]).is_empty());
    }
}

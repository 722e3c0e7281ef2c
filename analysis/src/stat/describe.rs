//! Mean ± standard deviation of a handful of values (over seeds, clients or both), and the
//! number formatting every table and figure shares (three significant digits).

/// Summary of the values of one table cell or figure point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor `n - 1`); `None` for a single value.
    pub std: Option<f64>,
    /// How many values.
    pub n: usize,
}

impl Stat {
    /// Summarizes the finite values of `values`; `None` when there are none.
    ///
    /// ```
    /// let stat = fedpref_analysis::Stat::of(&[1.0, 2.0, 3.0]).unwrap();
    /// assert_eq!((stat.mean, stat.std, stat.n), (2.0, Some(1.0), 3));
    /// ```
    pub fn of(values: &[f64]) -> Option<Stat> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        let n = finite.len();
        let mean = finite.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            let squares: f64 = finite.iter().map(|v| (v - mean).powi(2)).sum();
            (squares / (n - 1) as f64).sqrt()
        });
        Some(Stat { mean, std, n })
    }

    /// `mean ± std` with three significant digits of the mean (`mean` alone for one value).
    ///
    /// ```
    /// let stat = fedpref_analysis::Stat::of(&[0.5, 0.7]).unwrap();
    /// assert_eq!(stat.display(), "0.600 ± 0.141");
    /// ```
    pub fn display(&self) -> String {
        let decimals = decimals_for(self.mean);
        match self.std {
            Some(std) => format!("{:.*} ± {:.*}", decimals, self.mean, decimals, std),
            None => format!("{:.*}", decimals, self.mean),
        }
    }
}

/// Decimals that show three significant digits of `value` (between 0 and 6).
pub fn decimals_for(value: f64) -> usize {
    if value == 0.0 || !value.is_finite() {
        return 3;
    }
    let magnitude = value.abs().log10().floor() as i32;
    (2 - magnitude).clamp(0, 6) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_std_matches_hand_computation() {
        // mean 4, squared deviations 4 + 0 + 4 = 8, / (3 - 1) = 4, sqrt = 2.
        let stat = Stat::of(&[2.0, 4.0, 6.0]).unwrap();
        assert_eq!(
            stat,
            Stat {
                mean: 4.0,
                std: Some(2.0),
                n: 3
            }
        );
    }

    #[test]
    fn single_and_non_finite_values() {
        assert_eq!(
            Stat::of(&[f64::NAN, 1.5]),
            Some(Stat {
                mean: 1.5,
                std: None,
                n: 1
            })
        );
        assert_eq!(Stat::of(&[f64::NAN]), None);
        assert_eq!(Stat::of(&[]), None);
    }

    #[test]
    fn three_significant_digits() {
        assert_eq!(
            Stat {
                mean: 0.000_949_5,
                std: Some(0.000_1),
                n: 2
            }
            .display(),
            "0.000950 ± 0.000100"
        );
        assert_eq!(
            Stat {
                mean: 12.345,
                std: None,
                n: 1
            }
            .display(),
            "12.3"
        );
        assert_eq!(
            Stat {
                mean: -1234.4,
                std: Some(3.0),
                n: 2
            }
            .display(),
            "-1234 ± 3"
        );
        assert_eq!(
            Stat {
                mean: 0.0,
                std: Some(0.0),
                n: 2
            }
            .display(),
            "0.000 ± 0.000"
        );
    }
}

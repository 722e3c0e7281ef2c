//! One table cell's values, grouped by seed (a training run) and question (an evaluation item),
//! so that intervals can resample on both levels and a method can be matched with the baseline
//! on the same seed and question.

use std::collections::BTreeMap;

/// Values keyed by seed, then question id. A run that contributes a single value (a benchmark
/// summary without item scores, a training metric) keeps it under the empty question id.
/// The same (seed, question) given twice counts once, at the mean of its values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// seed -> question -> (sum, count).
    values: BTreeMap<u64, BTreeMap<String, (f64, u32)>>,
}

impl Sample {
    /// Adds `value` for `question` (`None`: the run's single value) of the run with `seed`;
    /// non-finite values are left out.
    pub fn push(&mut self, seed: u64, question: Option<&str>, value: f64) {
        if !value.is_finite() {
            return;
        }
        let slot = self
            .values
            .entry(seed)
            .or_default()
            .entry(question.unwrap_or_default().to_owned())
            .or_insert((0.0, 0));
        slot.0 += value;
        slot.1 += 1;
    }

    /// Every (seed, question, value), in seed then question order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &str, f64)> + '_ {
        self.values.iter().flat_map(|(seed, questions)| {
            questions
                .iter()
                .map(move |(q, (sum, count))| (*seed, q.as_str(), sum / f64::from(*count)))
        })
    }

    /// The value of (`seed`, `question`), if there is one.
    pub fn value(&self, seed: u64, question: &str) -> Option<f64> {
        let (sum, count) = self.values.get(&seed)?.get(question)?;
        Some(sum / f64::from(*count))
    }

    /// How many (seed, question) values.
    pub fn len(&self) -> usize {
        self.values.values().map(BTreeMap::len).sum()
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many seeds have values.
    pub fn seeds(&self) -> usize {
        self.values.len()
    }

    /// How many distinct questions (0 when every run gave a single value).
    pub fn questions(&self) -> usize {
        let mut questions: Vec<&str> = self
            .iter()
            .map(|(_, q, _)| q)
            .filter(|q| !q.is_empty())
            .collect();
        questions.sort_unstable();
        questions.dedup();
        questions.len()
    }

    /// Each seed's values (in question order): the clusters of [`crate::stat::Bootstrap`].
    pub fn clusters(&self) -> Vec<Vec<f64>> {
        self.values
            .values()
            .map(|questions| {
                questions
                    .values()
                    .map(|(sum, count)| sum / f64::from(*count))
                    .collect()
            })
            .collect()
    }

    /// Each seed's mean over its questions.
    pub fn seed_means(&self) -> Vec<f64> {
        self.clusters()
            .iter()
            .map(|values| values.iter().sum::<f64>() / values.len() as f64)
            .collect()
    }

    /// The cell's estimate: the mean over seeds of each seed's mean over questions, so every
    /// training run weighs the same; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        let means = self.seed_means();
        (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64)
    }

    /// One value per independent unit for a rank test: each question's mean over the seeds
    /// that have it, or each seed's value where runs gave a single value.
    pub fn unit_means(&self) -> Vec<f64> {
        let mut units: BTreeMap<(String, u64), (f64, u32)> = BTreeMap::new();
        for (seed, question, value) in self.iter() {
            // A per-run value is its own unit; questions pool over seeds.
            let key = if question.is_empty() {
                (String::new(), seed)
            } else {
                (question.to_owned(), 0)
            };
            let slot = units.entry(key).or_insert((0.0, 0));
            slot.0 += value;
            slot.1 += 1;
        }
        units
            .values()
            .map(|(sum, count)| sum / f64::from(*count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_weigh_the_same_and_duplicates_average() {
        let mut sample = Sample::default();
        // Seed 0: questions a, b -> mean 2; seed 1: question a only -> 5.
        sample.push(0, Some("a"), 1.0);
        sample.push(0, Some("b"), 3.0);
        sample.push(1, Some("a"), 4.0);
        sample.push(1, Some("a"), 6.0);
        sample.push(1, Some("b"), f64::NAN);
        assert_eq!(sample.len(), 3);
        assert_eq!((sample.seeds(), sample.questions()), (2, 2));
        assert_eq!(sample.value(1, "a"), Some(5.0));
        assert_eq!(sample.clusters(), vec![vec![1.0, 3.0], vec![5.0]]);
        assert_eq!(sample.mean(), Some(3.5), "(2 + 5) / 2, not (1 + 3 + 5) / 3");
        // Units: question a over both seeds (1 + 5) / 2, question b 3.
        assert_eq!(sample.unit_means(), vec![3.0, 3.0]);
    }

    #[test]
    fn per_run_values_are_units_of_their_own() {
        let mut sample = Sample::default();
        sample.push(0, None, 0.5);
        sample.push(3, None, 0.7);
        assert_eq!((sample.seeds(), sample.questions()), (2, 0));
        assert_eq!(sample.unit_means(), vec![0.5, 0.7]);
        assert_eq!(Sample::default().mean(), None);
    }
}

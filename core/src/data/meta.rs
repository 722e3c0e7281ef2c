//! The partitioner's view of a data set: one [`ExampleMeta`] per example (index, kind, group,
//! category, length).
//!
//! The category is the configured column when there is one; otherwise the host fills it with
//! length quantile buckets (`n_buckets`, labels `length-q1of4` ...), so that `dirichlet` can
//! skew clients by length when the data has no categories. Lengths are characters until the
//! tokenizer is available; [`example_metas_with_lengths`] takes token counts instead.

use abi_stable::std_types::RString;
use fedpref_plugin_api::ExampleMeta;

use super::dataset::Dataset;

/// The metadata of every example of `dataset`, lengths in characters.
pub fn example_metas(dataset: &Dataset, n_buckets: usize) -> Vec<ExampleMeta> {
    let lengths: Vec<u32> = dataset
        .examples
        .iter()
        .map(|e| u32::try_from(e.n_chars()).unwrap_or(u32::MAX))
        .collect();
    example_metas_with_lengths(dataset, &lengths, n_buckets)
}

/// The metadata of every example of `dataset` with the given lengths (`(n_examples,)`, e.g.
/// tokens of prompt plus answers).
///
/// # Panics
/// When `lengths` and the data set differ in length; callers measure the same examples.
pub fn example_metas_with_lengths(
    dataset: &Dataset,
    lengths: &[u32],
    n_buckets: usize,
) -> Vec<ExampleMeta> {
    assert_eq!(lengths.len(), dataset.len(), "one length per example");
    let buckets = (dataset.category_key.is_none()).then(|| length_buckets(lengths, n_buckets));
    dataset
        .examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let category = match &buckets {
                Some(buckets) => bucket_label(buckets[i], n_buckets),
                None => e.category.clone().unwrap_or_default(),
            };
            ExampleMeta {
                index: i as u64,
                kind: e.kind(),
                group: RString::from(e.group.clone().unwrap_or_default()),
                category: RString::from(category),
                length: lengths[i],
            }
        })
        .collect()
}

/// The label of length bucket `b` (0-based) of `n`: `length-q{b+1}of{n}`.
pub fn bucket_label(b: usize, n: usize) -> String {
    format!("length-q{}of{n}", b + 1)
}

/// Quantile buckets: bucket `b` holds lengths from the `b/n` quantile up to the `(b+1)/n`
/// quantile. Equal lengths always share a bucket, so with many ties some buckets stay empty.
/// `n_buckets` of 0 is treated as 1.
pub fn length_buckets(lengths: &[u32], n_buckets: usize) -> Vec<usize> {
    let n_buckets = n_buckets.max(1);
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    // Lower edges of buckets 1..n: the values at ranks len * b / n.
    let edges: Vec<u32> = (1..n_buckets)
        .map(|b| {
            sorted
                .get(sorted.len() * b / n_buckets)
                .copied()
                .unwrap_or(0)
        })
        .collect();
    lengths
        .iter()
        .map(|len| edges.partition_point(|edge| edge <= len))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_split_at_quantiles() {
        let lengths: Vec<u32> = (1..=8).rev().collect();
        assert_eq!(length_buckets(&lengths, 4), vec![3, 3, 2, 2, 1, 1, 0, 0]);
        assert_eq!(length_buckets(&lengths, 1), vec![0; 8]);
        // Ties share a bucket, even when that leaves another one empty.
        assert_eq!(length_buckets(&[5, 5, 5, 9], 2), vec![1, 1, 1, 1]);
        assert_eq!(length_buckets(&[1, 5, 5, 9], 2), vec![0, 1, 1, 1]);
        assert_eq!(length_buckets(&[], 3), Vec::<usize>::new());
        assert_eq!(bucket_label(0, 4), "length-q1of4");
    }
}

//! The order and names things are shown in: methods and aggregators in the paper's order
//! (then any others alphabetically), benchmarks MT-Bench, Vicuna, AdvBench, preference
//! accuracy, and readable labels for metric names.

use std::cmp::Ordering;

/// The paper's methods, in its column order.
pub const METHODS: [&str; 3] = ["dpo", "kto", "ktor"];

/// The paper's aggregators, in its row order.
pub const AGGREGATORS: [&str; 7] = [
    "fedavg",
    "fedprox",
    "scaffold",
    "fedavgm",
    "fedadagrad",
    "fedyogi",
    "fedadam",
];

fn by_list(list: &[&str], a: &str, b: &str) -> Ordering {
    let rank = |x: &str| list.iter().position(|m| *m == x).unwrap_or(list.len());
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

/// Orders method names: DPO, KTO, KTOR, then the rest alphabetically.
pub fn methods(a: &str, b: &str) -> Ordering {
    by_list(&METHODS, a, b)
}

/// Orders aggregator names: the paper's seven, then the rest alphabetically.
pub fn aggregators(a: &str, b: &str) -> Ordering {
    by_list(&AGGREGATORS, a, b)
}

fn benchmark_rank(name: &str) -> usize {
    let name = name.to_lowercase();
    if name.contains("mt") && name.contains("bench") || name.contains("judge") {
        0
    } else if name.contains("vicuna") {
        1
    } else if name.contains("advbench") || name.contains("harm") {
        2
    } else if name.contains("pref") || name.contains("accuracy") || name.contains("label") {
        3
    } else {
        4
    }
}

/// Orders benchmark names: MT-Bench, Vicuna, AdvBench, preference accuracy (held-out pairs,
/// labelled answers), the rest.
pub fn benchmarks(a: &str, b: &str) -> Ordering {
    benchmark_rank(a)
        .cmp(&benchmark_rank(b))
        .then_with(|| a.cmp(b))
}

/// Sorts and deduplicates `names` with `order`.
pub fn sorted(
    names: impl IntoIterator<Item = String>,
    order: fn(&str, &str) -> Ordering,
) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort_by(|a, b| order(a, b));
    names.dedup();
    names
}

/// `DPO`, `KTO`, `KTOR`: method names as the paper writes them.
pub fn method_label(method: &str) -> String {
    method.to_uppercase()
}

/// How the paper writes a benchmark's name (`mt-bench` -> `MT-Bench`); others unchanged.
pub fn benchmark_label(benchmark: &str) -> String {
    let key: String = benchmark
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    match key.as_str() {
        "mtbench" => "MT-Bench".into(),
        "mtbench1" => "MT-Bench-1".into(),
        "vicuna" | "vicunabench" => "Vicuna".into(),
        "advbench" => "AdvBench".into(),
        "harmbench" => "HarmBench".into(),
        "preferenceaccuracy" => "Preference".into(),
        "ktolabels" => "KTO labels".into(),
        "train" => "Training".into(),
        _ => benchmark.to_owned(),
    }
}

/// A readable label for a metric name (`rewards/margins` -> `Reward margin`).
pub fn metric_label(metric: &str) -> String {
    match metric {
        "loss" => "Loss".into(),
        "rewards/margins" => "Reward margin".into(),
        "rewards/accuracies" => "Reward accuracy".into(),
        "rewards/chosen" => "Reward (chosen)".into(),
        "rewards/rejected" => "Reward (rejected)".into(),
        "harmless_rate" => "harmless rate".into(),
        "mean_score" => "mean score".into(),
        "win_rate" => "win rate".into(),
        "mean_margin" => "reward margin".into(),
        other => other.replace('_', " "),
    }
}

/// Whether a larger value of `metric` is better (losses, perplexities, error and loss rates,
/// failures are the exceptions).
pub fn higher_is_better(metric: &str) -> bool {
    let metric = metric.to_lowercase();
    ![
        "loss",
        "perplexity",
        "error",
        "failed",
        "unparsed",
        "seconds",
    ]
    .iter()
    .any(|w| metric.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_order_first() {
        let methods = sorted(
            ["simpo", "ktor", "dpo", "kto", "bco"].map(String::from),
            super::methods,
        );
        assert_eq!(methods, ["dpo", "kto", "ktor", "bco", "simpo"]);
        let benchmarks = sorted(
            [
                "preference-accuracy",
                "kto-labels",
                "advbench",
                "zeta",
                "mt-bench",
                "vicuna",
            ]
            .map(String::from),
            super::benchmarks,
        );
        assert_eq!(
            benchmarks,
            [
                "mt-bench",
                "vicuna",
                "advbench",
                "kto-labels",
                "preference-accuracy",
                "zeta"
            ]
        );
        assert_eq!(benchmark_label("kto-labels"), "KTO labels");
    }

    #[test]
    fn labels() {
        assert_eq!(benchmark_label("mt_bench"), "MT-Bench");
        assert_eq!(benchmark_label("advbench"), "AdvBench");
        assert_eq!(
            format!(
                "{} {}",
                benchmark_label("preference-accuracy"),
                metric_label("accuracy")
            ),
            "Preference accuracy"
        );
        assert_eq!(benchmark_label("my-bench"), "my-bench");
    }

    #[test]
    fn directions() {
        assert!(higher_is_better("rewards/margins"));
        assert!(higher_is_better("harmless_rate"));
        assert!(!higher_is_better("loss"));
        assert!(!higher_is_better("loss_rate"));
    }
}

//! Property tests of every rule through the plugin's FFI objects: exactly-once placement,
//! determinism per seed, sizes, and the statistics each rule promises.

use std::collections::{BTreeSet, HashMap};

use abi_stable::std_types::RString;
use fedpref_plugin_api::{
    testing::metric, Assignment, ExampleKind, ExampleMeta, PartitionInput, PartitionOutput,
    PluginError, View,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::plugin;

const RULES: [&str; 5] = [
    "iid",
    "dirichlet",
    "natural",
    "redistribute",
    "quantity-skew",
];

fn meta(index: usize, kind: ExampleKind, group: &str, category: &str) -> ExampleMeta {
    ExampleMeta {
        index: index as u64,
        kind,
        group: RString::from(group),
        category: RString::from(category),
        length: 10 + index as u32 % 50,
    }
}

/// `n` random examples: mostly pairs, some singles, `n_groups` groups, `n_categories` categories.
fn random_examples(
    rng: &mut ChaCha8Rng,
    n: usize,
    n_groups: usize,
    n_categories: usize,
) -> Vec<ExampleMeta> {
    (0..n)
        .map(|i| {
            let kind = match rng.random_range(0..4) {
                0 => ExampleKind::Desirable,
                1 => ExampleKind::Undesirable,
                _ => ExampleKind::Pair,
            };
            let group = format!("user-{}", rng.random_range(0..n_groups));
            let category = format!("c{}", rng.random_range(0..n_categories));
            meta(i, kind, &group, &category)
        })
        .collect()
}

fn run(
    rule: &str,
    params: &str,
    examples: &[ExampleMeta],
    n_clients: u32,
    seed: u64,
) -> Result<PartitionOutput, PluginError> {
    run_with_sizes(rule, params, examples, n_clients, seed, &[])
}

/// [`run`] with the host's `client_sizes`.
fn run_with_sizes(
    rule: &str,
    params: &str,
    examples: &[ExampleMeta],
    n_clients: u32,
    seed: u64,
    client_sizes: &[u64],
) -> Result<PartitionOutput, PluginError> {
    let partitioner = plugin().new_partitioner(rule, params)?;
    partitioner
        .partition(&PartitionInput {
            examples: examples.into(),
            n_clients,
            seed,
            client_sizes: client_sizes.into(),
        })
        .into_result()
}

fn clients(output: &PartitionOutput) -> Vec<Vec<Assignment>> {
    output.clients.iter().map(|c| c.to_vec()).collect()
}

/// Every example whole exactly once, or (when `split`) every pair as its two answers exactly once
/// and every single whole exactly once.
fn assert_exactly_once(
    rule: &str,
    examples: &[ExampleMeta],
    output: &PartitionOutput,
    split: bool,
) {
    let mut seen: HashMap<(u64, View), usize> = HashMap::new();
    for a in output.clients.iter().flat_map(|c| c.iter()) {
        *seen.entry((a.example, a.view)).or_default() += 1;
    }
    let mut expected = 0;
    for m in examples {
        let views: &[View] = if split && m.kind == ExampleKind::Pair {
            &[View::Chosen, View::Rejected]
        } else {
            &[View::Whole]
        };
        for v in views {
            assert_eq!(
                seen.get(&(m.index, *v)),
                Some(&1),
                "{rule}: example {} view {v:?}",
                m.index
            );
            expected += 1;
        }
    }
    assert_eq!(
        seen.len(),
        expected,
        "{rule}: assignments outside the examples"
    );
    assert!(
        output.clients.iter().all(|c| !c.is_empty()),
        "{rule}: an empty client"
    );
}

#[test]
fn every_rule_places_everything_once_and_is_deterministic_per_seed() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    for case in 0..40 {
        let n = rng.random_range(20..300);
        let (n_groups, n_categories) = (rng.random_range(1..12), rng.random_range(1..6));
        let examples = random_examples(&mut rng, n, n_groups, n_categories);
        let n_clients = rng.random_range(1..=10);
        let seed = rng.random::<u64>();
        for rule in RULES {
            let first = run(rule, "", &examples, n_clients, seed)
                .unwrap_or_else(|e| panic!("{rule} case {case}: {e}"));
            assert_exactly_once(rule, &examples, &first, rule == "redistribute");
            let again = run(rule, "", &examples, n_clients, seed).unwrap();
            assert_eq!(
                first, again,
                "{rule} case {case}: same seed, different result"
            );
            let other = run(rule, "", &examples, n_clients, seed.wrapping_add(1)).unwrap();
            if rule == "natural" {
                assert_eq!(first, other, "natural must not depend on the seed");
            } else {
                assert_ne!(
                    clients(&first),
                    clients(&other),
                    "{rule} case {case}: a new seed changed nothing"
                );
            }
            if rule != "natural" {
                assert_eq!(
                    first.clients.len(),
                    n_clients as usize,
                    "{rule}: client count"
                );
            }
        }
    }
}

#[test]
fn iid_and_redistribute_sizes_differ_by_at_most_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..50 {
        let n = rng.random_range(10..200);
        let examples = random_examples(&mut rng, n, 3, 3);
        let n_clients = rng.random_range(1..=10);
        for rule in ["iid", "redistribute"] {
            let out = run(rule, "", &examples, n_clients, rng.random()).unwrap();
            let sizes: Vec<usize> = out.clients.iter().map(|c| c.len()).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{rule}: sizes {sizes:?}");
            assert_eq!(metric(&out, "min_client_size"), *min as f64);
        }
    }
}

#[test]
fn redistribute_keeps_a_pair_together_about_once_in_n_clients() {
    // 100 pairs on 10 clients: 200 answers, 20 per client. A pair's rejected answer shares its
    // chosen answer's client with probability q = 19/199 = 0.0955 (about 1/10). The mean share
    // over 200 seeds has standard deviation about sqrt(q (1 - q) / 100) / sqrt(200) = 0.0021, so
    // a tolerance of 0.01 is close to 5 standard deviations: tight enough to catch a rule that
    // keeps pairs together (share 1) or never does (share 0), loose enough never to flake.
    let examples: Vec<ExampleMeta> = (0..100)
        .map(|i| meta(i, ExampleKind::Pair, "", ""))
        .collect();
    let seeds = 200;
    let mut total = 0.0;
    for seed in 0..seeds {
        let out = run("redistribute", "", &examples, 10, seed).unwrap();
        let together = crate::pairs_on_same_client(&clients(&out));
        assert_eq!(metric(&out, "pairs_on_same_client"), together as f64);
        assert_eq!(
            metric(&out, "pairs_on_same_client_share"),
            together as f64 / 100.0
        );
        total += together as f64 / 100.0;
    }
    let mean = total / seeds as f64;
    let expected = 19.0 / 199.0;
    assert!(
        (mean - expected).abs() < 0.01,
        "mean share {mean}, expected {expected}"
    );
}

fn pairs(n: usize) -> Vec<ExampleMeta> {
    (0..n).map(|i| meta(i, ExampleKind::Pair, "", "")).collect()
}

#[test]
fn redistribute_keeps_each_clients_size_unless_asked_for_equal_shares() {
    // 6 pairs, 12 answers, on clients that held 3, 1 and 2 pairs.
    let examples = pairs(6);
    for seed in 0..20 {
        let out = run_with_sizes("redistribute", "", &examples, 3, seed, &[6, 2, 4]).unwrap();
        assert_exactly_once("redistribute", &examples, &out, true);
        let sizes: Vec<usize> = out.clients.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [6, 2, 4]);
        let equal = r#"{"sizes": "equal"}"#;
        let out = run_with_sizes("redistribute", equal, &examples, 3, seed, &[6, 2, 4]).unwrap();
        let sizes: Vec<usize> = out.clients.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [4, 4, 4]);
    }
}

#[test]
fn redistribute_with_kept_sizes_keeps_a_pair_together_as_the_sizes_say() {
    // 30 pairs (N = 60 answers) on clients of 30, 10 and 20 answers: a pair's two answers share
    // a client with probability q = Σ s (s − 1) / (N (N − 1)) = (870 + 90 + 380) / 3540 =
    // 0.37853 (equal shares of 20 would give 3 · 380 / 3540 = 0.32203). The mean share over 300
    // seeds has a standard deviation of about sqrt(q (1 − q) / 30) / sqrt(300) = 0.0051, so 0.025
    // is about 5 of them, and half the gap between the two rules.
    let examples = pairs(30);
    let seeds = 300;
    let mut total = 0.0;
    for seed in 0..seeds {
        let out = run_with_sizes("redistribute", "", &examples, 3, seed, &[30, 10, 20]).unwrap();
        total += metric(&out, "pairs_on_same_client_share");
    }
    let mean = total / seeds as f64;
    assert!((mean - 1340.0 / 3540.0).abs() < 0.025, "mean share {mean}");
}

#[test]
fn redistribute_refuses_sizes_that_do_not_fit_the_data() {
    let examples = pairs(3);
    let err = run_with_sizes("redistribute", "", &examples, 2, 0, &[4, 3]).unwrap_err();
    assert!(
        err.message
            .contains("client_sizes add up to 7 answers but the data holds 6"),
        "{err}"
    );
    let err = run_with_sizes("redistribute", "", &examples, 2, 0, &[6, 0]).unwrap_err();
    assert!(err.message.contains("client_sizes[1] = 0"), "{err}");
    let err = run("redistribute", r#"{"sizes": "same"}"#, &examples, 2, 0).unwrap_err();
    assert!(err.message.contains("sizes"), "{err}");
}

#[test]
fn redistribute_pools_existing_singles_and_reports_nan_without_pairs() {
    let singles: Vec<ExampleMeta> = (0..9)
        .map(|i| {
            meta(
                i,
                if i % 2 == 0 {
                    ExampleKind::Desirable
                } else {
                    ExampleKind::Undesirable
                },
                "",
                "",
            )
        })
        .collect();
    let out = run("redistribute", "", &singles, 3, 1).unwrap();
    assert_exactly_once("redistribute", &singles, &out, true);
    assert!(metric(&out, "pairs_on_same_client_share").is_nan());
    assert_eq!(metric(&out, "pairs_on_same_client"), 0.0);
    // Two pairs give four answers: enough for four clients but not five.
    let pairs: Vec<ExampleMeta> = (0..2).map(|i| meta(i, ExampleKind::Pair, "", "")).collect();
    assert!(run("redistribute", "", &pairs, 4, 1).is_ok());
    let err = run("redistribute", "", &pairs, 5, 1).unwrap_err();
    assert!(
        err.message
            .contains("4 single answers cannot fill 5 clients"),
        "{err}"
    );
}

#[test]
fn quantity_skew_sizes_are_at_least_one_and_skewed_by_the_exponent() {
    let examples: Vec<ExampleMeta> = (0..1000)
        .map(|i| meta(i, ExampleKind::Pair, "", ""))
        .collect();
    let mean_largest = |exponent: f64| {
        let params = format!("{{\"exponent\": {exponent}}}");
        let mut sum = 0.0;
        for seed in 0..100 {
            let out = run("quantity-skew", &params, &examples, 10, seed).unwrap();
            let sizes: Vec<usize> = out.clients.iter().map(|c| c.len()).collect();
            assert!(sizes.iter().all(|&s| s >= 1), "{sizes:?}");
            assert_eq!(sizes.iter().sum::<usize>(), 1000);
            sum += *sizes.iter().max().unwrap() as f64 / 1000.0;
        }
        sum / 100.0
    };
    let heavy = mean_largest(0.5);
    let light = mean_largest(5.0);
    // Pareto(0.5) weights are dominated by one client; Pareto(5) ones are close to equal (0.1).
    assert!(heavy > 0.6, "exponent 0.5: mean largest share {heavy}");
    assert!(light < 0.2, "exponent 5: mean largest share {light}");
    // One example per client is the floor even with extreme skew.
    let few: Vec<ExampleMeta> = (0..12)
        .map(|i| meta(i, ExampleKind::Pair, "", ""))
        .collect();
    for seed in 0..50 {
        let out = run("quantity-skew", r#"{"exponent": 0.05}"#, &few, 12, seed).unwrap();
        assert!(out.clients.iter().all(|c| c.len() == 1));
    }
}

#[test]
fn dirichlet_respects_min_size_and_skews_categories_with_small_alpha() {
    let examples: Vec<ExampleMeta> = (0..600)
        .map(|i| meta(i, ExampleKind::Pair, "", &format!("c{}", i % 6)))
        .collect();
    let mean_categories = |alpha: f64| {
        let params = format!("{{\"alpha\": {alpha}, \"min_size\": 10}}");
        let mut sum = 0.0;
        for seed in 0..30 {
            let out = run("dirichlet", &params, &examples, 10, seed).unwrap();
            assert!(out.clients.iter().all(|c| c.len() >= 10));
            for client in out.clients.iter() {
                let cats: BTreeSet<&str> = client
                    .iter()
                    .map(|a| examples[a.example as usize].category.as_str())
                    .collect();
                sum += cats.len() as f64;
            }
        }
        sum / 300.0
    };
    let skewed = mean_categories(0.1);
    let even = mean_categories(100.0);
    assert!(skewed < 3.5, "alpha 0.1: {skewed} categories per client");
    assert!(even > 5.9, "alpha 100: {even} categories per client");
}

#[test]
fn dirichlet_gives_up_with_a_clear_error() {
    // Two categories and a tiny alpha: each category lands almost whole on one client, so eight
    // of the ten clients stay below min_size in every draw.
    let examples: Vec<ExampleMeta> = (0..100)
        .map(|i| meta(i, ExampleKind::Pair, "", &format!("c{}", i % 2)))
        .collect();
    let err = run(
        "dirichlet",
        r#"{"alpha": 0.001, "min_size": 10, "max_attempts": 3}"#,
        &examples,
        10,
        0,
    )
    .unwrap_err();
    assert!(
        err.message.contains("after max_attempts = 3 draws"),
        "{err}"
    );
    let err = run("dirichlet", r#"{"min_size": 11}"#, &examples, 10, 0).unwrap_err();
    assert!(
        err.message.contains("cannot give 10 clients min_size = 11"),
        "{err}"
    );
}

#[test]
fn natural_follows_groups_with_caps() {
    // Group sizes: a 5, b 1, c 3, d 2, e 1.
    let groups = ["a", "a", "b", "c", "a", "c", "d", "a", "c", "d", "a", "e"];
    let examples: Vec<ExampleMeta> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| meta(i, ExampleKind::Pair, g, ""))
        .collect();
    let names = |out: &PartitionOutput| -> Vec<String> {
        out.clients
            .iter()
            .map(|c| {
                let set: BTreeSet<&str> = c.iter().map(|a| groups[a.example as usize]).collect();
                set.into_iter().collect::<Vec<_>>().join("+")
            })
            .collect()
    };
    let plain = run("natural", "", &examples, 99, 0).unwrap();
    assert_eq!(names(&plain), ["a", "b", "c", "d", "e"]);
    assert_eq!(metric(&plain, "groups"), 5.0);
    let merged = run("natural", r#"{"merge_below": 2}"#, &examples, 1, 0).unwrap();
    assert_eq!(names(&merged), ["a", "c", "d", "b+e"]);
    assert_eq!(metric(&merged, "merged_groups"), 2.0);
    let capped = run("natural", r#"{"max_clients": 3}"#, &examples, 1, 0).unwrap();
    assert_eq!(names(&capped), ["a", "c", "b+d+e"]);
    let both = run(
        "natural",
        r#"{"max_clients": 3, "merge_below": 3}"#,
        &examples,
        1,
        0,
    )
    .unwrap();
    assert_eq!(names(&both), ["a", "c", "b+d+e"]);
    let one = run("natural", r#"{"max_clients": 1}"#, &examples, 1, 0).unwrap();
    assert_eq!(one.clients.len(), 1);
    for out in [&plain, &merged, &capped, &both, &one] {
        assert_exactly_once("natural", &examples, out, false);
    }
    let mut missing = examples.clone();
    missing[4].group = RString::new();
    let err = run("natural", "", &missing, 3, 0).unwrap_err();
    assert!(
        err.message
            .contains("1 of 12 examples have no group (first: example 4)"),
        "{err}"
    );
}

#[test]
fn bad_inputs_and_params_are_clear_errors() {
    let examples: Vec<ExampleMeta> = (0..5)
        .map(|i| meta(i, ExampleKind::Pair, "u", ""))
        .collect();
    for rule in ["iid", "dirichlet", "quantity-skew"] {
        let err = run(rule, "", &examples, 6, 0).unwrap_err();
        assert!(
            err.message.contains("5 examples cannot fill 6 clients"),
            "{rule}: {err}"
        );
        let err = run(rule, "", &examples, 0, 0).unwrap_err();
        assert!(
            err.message.contains("n_clients must be at least 1"),
            "{rule}: {err}"
        );
        let err = run(rule, "", &[], 1, 0).unwrap_err();
        assert!(err.message.contains("0 examples"), "{rule}: {err}");
    }
    let err = run("natural", "", &[], 1, 0).unwrap_err();
    assert!(err.message.contains("no examples"), "{err}");
    for rule in RULES {
        let err = plugin()
            .new_partitioner(rule, r#"{"alhpa": 1}"#)
            .err()
            .expect("typo accepted");
        assert!(
            err.message.contains("unknown parameter `alhpa`"),
            "{rule}: {err}"
        );
    }
    let err = plugin()
        .new_partitioner("natural", r#"{"max_clients": 2.5}"#)
        .err()
        .expect("fraction accepted");
    assert!(
        err.message.contains("`max_clients` must be a whole number"),
        "{err}"
    );
    let err = plugin()
        .new_partitioner("dirichlet", r#"{"alpha": 0}"#)
        .err()
        .expect("zero alpha accepted");
    assert!(err.message.contains("`alpha` = 0 is outside"), "{err}");
    let err = plugin()
        .new_partitioner("quantity-skew", r#"{"exponent": -1}"#)
        .err()
        .expect("negative accepted");
    assert!(err.message.contains("`exponent` = -1 is outside"), "{err}");
}

#[test]
fn the_manifest_lists_the_five_rules() {
    let manifest = plugin().manifest();
    let names: Vec<&str> = manifest
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, RULES);
}

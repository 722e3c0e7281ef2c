//! The host side of partitioning and evaluation: metadata, client data, views, eval split and
//! the inspection report with a partition preview.

use abi_stable::std_types::RVec;
use fedpref_plugin_api::{Assignment, ExampleKind, PartitionOutput, View};
use serde_json::json;

use super::{jsonl, Fixtures};
use crate::data::{
    example_metas, inspect, load_splits, require_pairs, split_eval, ClientData, DataConfig,
    Dataset, ExampleView, Message,
};

/// Ten pairs and ten singles with users and topics.
fn mixed_files(fx: &Fixtures) -> (Dataset, Dataset) {
    let pairs: Vec<_> = (0..10)
        .map(|i| {
            json!({"prompt": "q".repeat(i + 1), "chosen": format!("good {i}"), "rejected": format!("bad {i}"),
                   "user_id": format!("u{}", i % 3), "topic": if i < 5 { "math" } else { "art" }})
        })
        .collect();
    let singles: Vec<_> = (0..10)
        .map(|i| json!({"prompt": "q", "completion": format!("a{i}"), "label": i % 2 == 0, "user_id": "u0"}))
        .collect();
    let config = DataConfig {
        category_key: Some("topic".into()),
        ..DataConfig::default()
    };
    let paired = fx.load("pairs.jsonl", jsonl(&pairs), &config).unwrap();
    let single = fx
        .load("singles.jsonl", jsonl(&singles), &DataConfig::default())
        .unwrap();
    (paired, single)
}

/// Pairs split into their answers and every item dealt round-robin: a stand-in for
/// `redistribute` (the real plugin is tested in its own crate).
fn round_robin_answers(kinds: &[ExampleKind], n_clients: usize) -> PartitionOutput {
    let items: Vec<Assignment> = kinds
        .iter()
        .enumerate()
        .flat_map(|(i, k)| {
            let views: &[View] = if *k == ExampleKind::Pair {
                &[View::Chosen, View::Rejected]
            } else {
                &[View::Whole]
            };
            views.iter().map(move |&view| Assignment {
                example: i as u64,
                view,
            })
        })
        .collect();
    let mut clients = vec![RVec::new(); n_clients];
    for (j, item) in items.into_iter().enumerate() {
        clients[j % n_clients].push(item);
    }
    PartitionOutput {
        clients: clients.into_iter().collect(),
        metrics: RVec::new(),
    }
}

#[test]
fn metadata_carries_kind_group_category_and_length() {
    let fx = Fixtures::new();
    let (paired, single) = mixed_files(&fx);
    let metas = example_metas(&paired, 4);
    assert_eq!(metas.len(), 10);
    assert_eq!((metas[3].index, metas[3].kind), (3, ExampleKind::Pair));
    assert_eq!(
        (metas[3].group.as_str(), metas[3].category.as_str()),
        ("u0", "math")
    );
    assert_eq!(metas[3].length as usize, 4 + "good 3".len() + "bad 3".len());
    // Without a category column the host fills length quantile buckets.
    let metas = example_metas(&single, 2);
    assert_eq!(metas[0].kind, ExampleKind::Desirable);
    assert_eq!(metas[1].kind, ExampleKind::Undesirable);
    assert!(metas
        .iter()
        .all(|m| m.category.starts_with("length-q") && m.category.ends_with("of2")));
}

#[test]
fn client_data_counts_a_redistributed_partition() {
    let fx = Fixtures::new();
    let (paired, _) = mixed_files(&fx);
    let metas = example_metas(&paired, 4);
    let kinds: Vec<ExampleKind> = metas.iter().map(|m| m.kind).collect();
    // 20 answers on 4 clients: chosen and rejected of a pair are adjacent, so they never share
    // a client (round-robin sends them to neighbouring clients).
    let data =
        ClientData::from_partition("round-robin", &round_robin_answers(&kinds, 4), &metas).unwrap();
    assert_eq!(data.n_clients(), 4);
    assert!((0..4).all(|c| data.counts(c).answers() == 5));
    let totals = data.totals();
    assert_eq!(
        (totals.pairs, totals.desirable, totals.undesirable),
        (0, 10, 10)
    );
    assert_eq!(data.pairs_intact(), 0);
    // On one client every pair stays comparable.
    let data =
        ClientData::from_partition("round-robin", &round_robin_answers(&kinds, 1), &metas).unwrap();
    assert_eq!(data.pairs_intact(), 10);
    // Whole pairs are split inside a client for an unpaired loss.
    let whole = PartitionOutput {
        clients: vec![(0..10)
            .map(|i| Assignment {
                example: i,
                view: View::Whole,
            })
            .collect::<RVec<_>>()]
        .into_iter()
        .collect(),
        metrics: RVec::new(),
    };
    let data = ClientData::from_partition("one", &whole, &metas).unwrap();
    let singles = data.singles(0);
    assert_eq!(singles.len(), 20);
    assert!(singles
        .iter()
        .all(|a| paired.examples[a.example as usize].view(a.view).is_some()));
}

#[test]
fn views_split_pairs_but_never_join_singles() {
    let fx = Fixtures::new();
    let (paired, single) = mixed_files(&fx);
    let e = &paired.examples[0];
    let Some(ExampleView::Single {
        completion,
        desirable: false,
        ..
    }) = e.view(View::Rejected)
    else {
        panic!("the rejected view of a pair is an undesirable single")
    };
    assert_eq!(completion, [Message::assistant("bad 0")]);
    assert!(matches!(
        e.view(View::Whole),
        Some(ExampleView::Pair { .. })
    ));
    assert_eq!(single.examples[0].view(View::Chosen), None);
    assert_eq!(paired.singles().count(), 20);
    assert_eq!(single.singles().count(), 10);
    assert!(paired.singles().all(|(_, v, view)| matches!(view, ExampleView::Single { desirable, .. } if desirable == (v == View::Chosen))));
    // A mixed set (pairs plus singles) still cannot feed a paired loss.
    let mut mixed = paired.clone();
    mixed.examples.extend(single.examples.iter().cloned());
    let err = require_pairs(&mixed, "ipo").unwrap_err().to_string();
    assert!(
        err.contains("loss \"ipo\"")
            && err.contains("holds 10 single labelled answers among its 20 examples"),
        "{err}"
    );
}

#[test]
fn eval_split_is_seeded_disjoint_and_complete() {
    let fx = Fixtures::new();
    let rows: Vec<_> = (0..50)
        .map(|i| json!({"prompt": format!("p{i}"), "chosen": "a", "rejected": "b"}))
        .collect();
    let data = fx
        .load("fifty.jsonl", jsonl(&rows), &DataConfig::default())
        .unwrap();
    let prompts = |d: &Dataset| {
        d.examples
            .iter()
            .map(|e| e.prompt[0].content.clone())
            .collect::<Vec<_>>()
    };
    let (train, eval) = split_eval(&data, 0.1, 7).unwrap();
    assert_eq!((train.len(), eval.len()), (45, 5));
    let (train_again, eval_again) = split_eval(&data, 0.1, 7).unwrap();
    assert_eq!(
        (prompts(&train), prompts(&eval)),
        (prompts(&train_again), prompts(&eval_again))
    );
    let (_, other) = split_eval(&data, 0.1, 8).unwrap();
    assert_ne!(prompts(&eval), prompts(&other));
    let mut all = [prompts(&train), prompts(&eval)].concat();
    all.sort();
    let mut expected = prompts(&data);
    expected.sort();
    assert_eq!(all, expected, "every example lands in exactly one part");
    // Both parts keep file order.
    assert!(train
        .examples
        .windows(2)
        .all(|w| w[0].location.line < w[1].location.line));
    // A tiny fraction still holds one example out; a fraction leaving nothing to train is an error.
    assert_eq!(split_eval(&data, 0.001, 1).unwrap().1.len(), 1);
    let err = split_eval(&data, 0.99, 1).unwrap_err().to_string();
    assert!(
        err.starts_with("data.eval_fraction: 0.99 of 50 examples") && err.contains("fifty.jsonl"),
        "{err}"
    );
}

#[test]
fn load_splits_uses_a_file_or_a_fraction() {
    let fx = Fixtures::new();
    let rows: Vec<_> = (0..20)
        .map(|i| json!({"prompt": format!("p{i}"), "chosen": "a", "rejected": "b"}))
        .collect();
    let train = fx.file("train.jsonl", jsonl(&rows));
    let held = fx.file("held.jsonl", jsonl(&rows[..3]));
    let splits = load_splits(
        &DataConfig {
            path: Some(train.clone()),
            eval_path: Some(held),
            ..DataConfig::default()
        },
        1,
    )
    .unwrap();
    assert_eq!(
        (splits.train.len(), splits.eval.map(|e| e.len())),
        (20, Some(3))
    );
    let splits = load_splits(
        &DataConfig {
            path: Some(train.clone()),
            eval_fraction: 0.25,
            ..DataConfig::default()
        },
        1,
    )
    .unwrap();
    assert_eq!(
        (splits.train.len(), splits.eval.map(|e| e.len())),
        (15, Some(5))
    );
    let splits = load_splits(
        &DataConfig {
            path: Some(train),
            ..DataConfig::default()
        },
        1,
    )
    .unwrap();
    assert!(splits.eval.is_none());
    let err = load_splits(&DataConfig::default(), 1)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "data.path: is not set; name the training data file");
}

#[test]
fn inspect_prints_tables_and_a_client_preview() {
    let fx = Fixtures::new();
    let rows = [
        json!({"prompt": "p", "completion": "yes", "label": true, "user_id": "a"}),
        json!({"prompt": "p", "completion": "no", "label": false, "user_id": "b"}),
        json!({"prompt": "p", "completion": "ok", "label": true, "user_id": "a"}),
        json!({"prompt": "p", "completion": "ok", "label": "maybe", "user_id": "a"}),
    ];
    let path = fx.file("kto.jsonl", jsonl(&rows));
    // Inspect counts invalid rows even when the config says to stop on them.
    let (report, data) = inspect(&path, &DataConfig::default()).unwrap();
    let data = data.expect("three valid records");
    let metas = example_metas(&data, 4);
    let kinds: Vec<ExampleKind> = metas.iter().map(|m| m.kind).collect();
    let clients =
        ClientData::from_partition("rr", &round_robin_answers(&kinds, 2), &metas).unwrap();
    let text = report
        .with_clients("rr", &clients, &[("clients".to_owned(), 2.0)])
        .to_string();
    for expected in [
        "layout      trl-unpaired (detected)",
        "examples    3 valid: 0 pairs, 3 single answers",
        "groups      user_id: 2 distinct",
        "desirable          2  66.7%",
        "invalid records: 1 (skipped)",
        "label-not-bool        1",
        "line 4: `label` must be true or false, got \"maybe\"",
        "clients (rr, 2 clients)",
        "pairs intact (whole, or both answers on one client): 0 of 0 (-)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn inspect_explains_a_file_without_valid_records() {
    let fx = Fixtures::new();
    let path = fx.file(
        "bad.jsonl",
        "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"a\"}\nnot json\n",
    );
    let (report, data) = inspect(&path, &DataConfig::default()).unwrap();
    assert!(data.is_none());
    let text = report.to_string();
    for expected in [
        "examples    0 valid",
        "invalid records: 2 (skipped)",
        "line 1: chosen and rejected are identical",
        "line 2: invalid JSON",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

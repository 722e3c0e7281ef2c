//! The LLaMA-Factory demo files that `cargo xtask setup` unpacks into `assets/data/`
//! (`cargo xtask test` runs setup first, so their absence is a failure, not a skip).

use std::path::PathBuf;

use crate::data::{inspect, load, require_pairs, DataConfig, FileKind, Layout, Role};

fn asset(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/data")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run cargo xtask setup",
        path.display()
    );
    path
}

#[test]
fn dpo_en_demo_loads_as_sharegpt_pairs() {
    let path = asset("dpo_en_demo.json");
    let data = load(&path, &DataConfig::default()).unwrap();
    assert_eq!(
        (data.layout, data.file_kind),
        (Layout::SharegptPaired, FileKind::Json)
    );
    assert_eq!(
        (
            data.len(),
            data.n_pairs(),
            data.n_records,
            data.invalid.total()
        ),
        (300, 300, 300, 0)
    );
    // 80 conversations open with a system turn; 106 carry earlier turns of history.
    assert_eq!(
        data.examples
            .iter()
            .filter(|e| e.prompt[0].role == Role::System)
            .count(),
        80
    );
    assert_eq!(
        data.examples
            .iter()
            .filter(|e| e.prompt.iter().any(|m| m.role == Role::Assistant))
            .count(),
        106
    );
    assert!(data
        .examples
        .iter()
        .all(|e| e.prompt.last().map(|m| m.role) == Some(Role::User)));
    assert!(require_pairs(&data, "dpo").is_ok());
}

#[test]
fn kto_en_demo_loads_as_labelled_singles() {
    let path = asset("kto_en_demo.json");
    let data = load(&path, &DataConfig::default()).unwrap();
    assert_eq!(data.layout, Layout::SharegptKto);
    assert_eq!(
        (data.len(), data.n_desirable(), data.n_undesirable()),
        (300, 150, 150)
    );
    assert_eq!(
        data.examples.iter().filter(|e| e.prompt.len() > 1).count(),
        77,
        "multi-turn prompts"
    );
    let err = require_pairs(&data, "dpo").unwrap_err().to_string();
    assert!(
        err.starts_with("loss \"dpo\" needs (chosen, rejected) pairs"),
        "{err}"
    );
    assert!(
        err.contains(&path.display().to_string())
            && err.contains("holds only single labelled answers (300"),
        "{err}"
    );
}

#[test]
fn inspect_reports_the_demo_file() {
    let (report, _) = inspect(&asset("dpo_en_demo.json"), &DataConfig::default()).unwrap();
    let text = report.to_string();
    assert!(text.contains("sharegpt-paired (detected)"), "{text}");
    assert!(
        text.contains("300 valid: 300 pairs, 0 single answers"),
        "{text}"
    );
    assert!(text.contains("invalid records: none"), "{text}");
}

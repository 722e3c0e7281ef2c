//! The sweep's judge check, `<sweep>/judge-check.json`, written by `fedpref judge check`: how
//! often the judge preferred the known better answer of checked pairs, in each order. Every
//! field is optional, so an older or newer writer still reads; a file that is not such an
//! object is a [`Problem`], and the judge then counts as unchecked.

use std::{io::ErrorKind, path::Path};

use super::{is_run_dir, Problem};

pub use fedpref_rundir::{JudgeCheck, DEFAULT_THRESHOLD, JUDGE_CHECK_FILE};

/// Reads the check of the sweep at `root`: `root/judge-check.json`, or for a single run's
/// directory the one beside it. `None` when there is none; a corrupt file adds a problem.
pub fn find(root: &Path, problems: &mut Vec<Problem>) -> Option<JudgeCheck> {
    let mut places = vec![root.join(JUDGE_CHECK_FILE)];
    if is_run_dir(root) {
        if let Some(parent) = root.parent() {
            places.push(parent.join(JUDGE_CHECK_FILE));
        }
    }
    places.iter().find_map(|path| read(path, problems))
}

fn read(path: &Path, problems: &mut Vec<Problem>) -> Option<JudgeCheck> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(Problem::file(
                path,
                format!("cannot read it ({e}); the judge counts as unchecked"),
            ));
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(check) => Some(check),
        Err(e) => {
            problems.push(Problem::file(
                path,
                format!("not a judge check ({e}); the judge counts as unchecked"),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_check_reads_and_unknown_fields_pass() {
        let check: JudgeCheck = serde_json::from_str(
            r#"{"judge": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "protocol": "pair-v2",
                "pairs": 120, "agreement": 0.642, "agreement_better_first": 0.71,
                "agreement_better_second": 0.574, "position_consistency": 0.6,
                "threshold": 0.75, "seconds": 812.5}"#,
        )
        .unwrap();
        assert_eq!(check.pairs, Some(120));
        assert_eq!(check.agreement, Some(0.642));
        assert_eq!(check.threshold(), 0.75);
        assert_eq!(check.protocol.as_deref(), Some("pair-v2"));
    }

    #[test]
    fn every_field_is_optional() {
        let check: JudgeCheck = serde_json::from_str(r#"{"agreement": 0.9}"#).unwrap();
        assert_eq!(check.threshold(), DEFAULT_THRESHOLD);
        assert_eq!((check.judge, check.pairs), (None, None));
        let empty: JudgeCheck = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, JudgeCheck::default());
    }

    #[test]
    fn found_beside_a_run_and_corrupt_files_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("dpo-fedavg-s0");
        std::fs::create_dir_all(run.join("metrics")).unwrap();
        let mut problems = Vec::new();
        assert_eq!(find(dir.path(), &mut problems), None);
        std::fs::write(dir.path().join(JUDGE_CHECK_FILE), r#"{"pairs": 8}"#).unwrap();
        let found = find(&run, &mut problems).unwrap();
        assert_eq!(found.pairs, Some(8));
        std::fs::write(dir.path().join(JUDGE_CHECK_FILE), r#"{"pairs": "many"}"#).unwrap();
        assert_eq!(find(dir.path(), &mut problems), None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("counts as unchecked"));
    }
}

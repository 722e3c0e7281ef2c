//! A corpus of malformed files: each yields its own problem at its own location, strict mode
//! stops with it, skip mode counts it, and nothing panics.

use serde_json::json;

use super::{jsonl, skip, Fixtures};
use crate::{
    data::{DataConfig, Format, Reason},
    Error,
};

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    format: Format,
    reason: Reason,
    /// How the location prints: `line N` or `record N (line M)`.
    location: &'static str,
    /// Valid examples around the bad record.
    valid: usize,
}

fn good_pair() -> String {
    json!({"prompt": "p", "chosen": "yes", "rejected": "no"}).to_string()
}

fn good_single() -> String {
    json!({"prompt": "p", "completion": "yes", "label": true}).to_string()
}

/// A JSON Lines file: a good pair, then `bad` on line 2, then another good pair.
fn pair_lines(bad: &str) -> Vec<u8> {
    format!("{}\n{bad}\n{}\n", good_pair(), good_pair()).into_bytes()
}

fn single_lines(bad: &str) -> Vec<u8> {
    format!("{}\n{bad}\n{}\n", good_single(), good_single()).into_bytes()
}

fn corpus() -> Vec<Case> {
    let case = |name, bytes, format, reason, location, valid| Case {
        name,
        bytes,
        format,
        reason,
        location,
        valid,
    };
    let mut utf8_line = format!("{}\n", good_pair()).into_bytes();
    utf8_line
        .extend_from_slice(b"{\"prompt\": \"caf\xe9\", \"chosen\": \"a\", \"rejected\": \"b\"}\n");
    let mut utf8_array = format!("[\n{},\n", good_pair()).into_bytes();
    utf8_array.extend_from_slice(
        b"{\"prompt\": \"\xc3\x28\", \"chosen\": \"a\", \"rejected\": \"b\"}\n]",
    );
    let sharegpt = |conv: serde_json::Value| json!({"conversations": conv, "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}});
    let kto = |messages: serde_json::Value, label: serde_json::Value| json!({"messages": messages, "label": label});
    let good_kto = kto(
        json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),
        json!(true),
    );
    vec![
        case(
            "utf8.jsonl",
            utf8_line,
            Format::Auto,
            Reason::InvalidUtf8,
            "line 2",
            1,
        ),
        case(
            "utf8.json",
            utf8_array,
            Format::Auto,
            Reason::InvalidUtf8,
            "record 1 (line 3)",
            1,
        ),
        case(
            "syntax.jsonl",
            pair_lines("{\"prompt\": \"p\", \"chosen\": \"a\" \"rejected\": \"b\"}"),
            Format::Auto,
            Reason::Syntax,
            "line 2",
            2,
        ),
        case(
            "truncated.jsonl",
            format!(
                "{}\n{}\n{{\"prompt\": \"p\", \"chosen\": \"a\", \"rej",
                good_pair(),
                good_pair()
            )
            .into_bytes(),
            Format::Auto,
            Reason::Truncated,
            "line 3",
            2,
        ),
        case(
            "truncated.json",
            format!(
                "[{},\n{},\n{{\"prompt\": \"p\", \"cho",
                good_pair(),
                good_pair()
            )
            .into_bytes(),
            Format::Auto,
            Reason::Truncated,
            "record 2 (line 3)",
            2,
        ),
        case(
            "array.jsonl",
            pair_lines("[\"p\", \"a\", \"b\"]"),
            Format::Auto,
            Reason::NotAnObject,
            "line 2",
            2,
        ),
        case(
            "missing.jsonl",
            pair_lines(r#"{"prompt": "p", "chosen": "a"}"#),
            Format::TrlPaired,
            Reason::MissingField,
            "line 2",
            2,
        ),
        case(
            "type.jsonl",
            pair_lines(r#"{"prompt": "p", "chosen": 5, "rejected": "b"}"#),
            Format::Auto,
            Reason::WrongType,
            "line 2",
            2,
        ),
        case(
            "empty.jsonl",
            pair_lines(r#"{"prompt": "p", "chosen": "", "rejected": "b"}"#),
            Format::Auto,
            Reason::EmptyAnswer,
            "line 2",
            2,
        ),
        case(
            "blank.jsonl",
            single_lines(r#"{"prompt": "p", "completion": " \n\t", "label": false}"#),
            Format::Auto,
            Reason::EmptyAnswer,
            "line 2",
            2,
        ),
        case(
            "same.jsonl",
            pair_lines(r#"{"prompt": "p", "chosen": "same", "rejected": "same"}"#),
            Format::Auto,
            Reason::IdenticalAnswers,
            "line 2",
            2,
        ),
        case(
            "label-str.jsonl",
            single_lines(r#"{"prompt": "p", "completion": "a", "label": "yes"}"#),
            Format::Auto,
            Reason::LabelNotBool,
            "line 2",
            2,
        ),
        case(
            "label-int.jsonl",
            single_lines(r#"{"prompt": "p", "completion": "a", "label": 1}"#),
            Format::Auto,
            Reason::LabelNotBool,
            "line 2",
            2,
        ),
        case(
            "role.json",
            json!([
                sharegpt(json!([{"from": "human", "value": "q"}])),
                sharegpt(json!([{"from": "robot", "value": "q"}]))
            ])
            .to_string()
            .into_bytes(),
            Format::Auto,
            Reason::UnknownRole,
            "record 1 (line 1)",
            1,
        ),
        case(
            "turns.json",
            json!([
                sharegpt(json!([{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}])),
                sharegpt(json!([{"from": "human", "value": "q"}]))
            ])
            .to_string()
            .into_bytes(),
            Format::Auto,
            Reason::BadTurns,
            "record 0 (line 1)",
            1,
        ),
        case(
            "kto-turns.jsonl",
            format!(
                "{good_kto}\n{}\n",
                kto(json!([{"role": "user", "content": "q"}]), json!(false))
            )
            .into_bytes(),
            Format::Auto,
            Reason::BadTurns,
            "line 2",
            1,
        ),
        case(
            "prompt.jsonl",
            pair_lines(r#"{"prompt": "  ", "chosen": "a", "rejected": "b"}"#),
            Format::Auto,
            Reason::EmptyPrompt,
            "line 2",
            2,
        ),
        case(
            "content.jsonl",
            pair_lines(
                r#"{"prompt": [{"role": "user", "content": [{"type": "text", "text": "q"}]}], "chosen": "a", "rejected": "b"}"#,
            ),
            Format::Auto,
            Reason::WrongType,
            "line 2",
            2,
        ),
        case(
            "system.jsonl",
            format!(
                "{good_kto}\n{}\n",
                json!({"messages": good_kto["messages"], "label": true, "system": 3})
            )
            .into_bytes(),
            Format::Auto,
            Reason::WrongType,
            "line 2",
            1,
        ),
        case(
            "user-null.jsonl",
            format!(
                "{}\n{}\n",
                json!({"prompt": "p", "chosen": "a", "rejected": "b", "user_id": "u"}),
                json!({"prompt": "p", "chosen": "a", "rejected": "b", "user_id": null})
            )
            .into_bytes(),
            Format::Auto,
            Reason::MissingField,
            "line 2",
            1,
        ),
    ]
}

#[test]
fn each_malformed_file_reports_its_problem_and_location() {
    let fx = Fixtures::new();
    let corpus = corpus();
    assert!(corpus.len() >= 15);
    for case in &corpus {
        let path = fx.file(case.name, &case.bytes);
        let strict = DataConfig {
            format: case.format,
            ..DataConfig::default()
        };
        match crate::data::load(&path, &strict) {
            Err(Error::InvalidData {
                path: p,
                count,
                first,
            }) => {
                assert_eq!(p, path);
                assert_eq!(count, 1, "{}", case.name);
                assert_eq!(
                    first[0].problem.reason(),
                    case.reason,
                    "{}: {}",
                    case.name,
                    first[0]
                );
                let message = Error::InvalidData {
                    path: p,
                    count,
                    first,
                }
                .to_string();
                assert!(
                    message.contains(&format!("{}: 1 invalid record", path.display())),
                    "{message}"
                );
                assert!(
                    message.contains(&format!("\n  {}: ", case.location)),
                    "{}: {message}",
                    case.name
                );
                assert!(message.contains("data.on_invalid = \"skip\""), "{message}");
            }
            other => panic!("{}: expected invalid data, got {other:?}", case.name),
        }
        let skipped = crate::data::load(
            &path,
            &DataConfig {
                format: case.format,
                ..skip()
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(skipped.invalid.get(case.reason), 1, "{}", case.name);
        assert_eq!(skipped.invalid.total(), 1, "{}", case.name);
        assert_eq!(skipped.len(), case.valid, "{}", case.name);
        assert_eq!(skipped.n_records, case.valid + 1, "{}", case.name);
        assert_eq!(
            skipped.issues[0].location.to_string(),
            case.location,
            "{}",
            case.name
        );
    }
}

#[test]
fn strict_errors_list_the_first_problems_and_the_count() {
    let fx = Fixtures::new();
    let bad = r#"{"prompt": "p", "chosen": "x", "rejected": "x"}"#;
    let text: String = std::iter::repeat_n(bad, 25)
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("{}\n{text}", good_pair());
    let err = fx
        .load("many.jsonl", &text, &DataConfig::default())
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("25 invalid records (first 10 shown)"),
        "{message}"
    );
    assert!(
        message.contains("line 2: chosen and rejected are identical"),
        "{message}"
    );
    assert!(
        message.contains("line 11:") && !message.contains("line 12:"),
        "{message}"
    );
    let data = fx.load("many.jsonl", &text, &skip()).unwrap();
    assert_eq!(
        (
            data.len(),
            data.invalid.get(Reason::IdenticalAnswers),
            data.issues.len()
        ),
        (1, 25, 10)
    );
}

#[test]
fn files_that_cannot_be_read_as_records_are_clear_errors() {
    let fx = Fixtures::new();
    let err = fx
        .load(
            "comma.json",
            format!("[{} {}]", good_pair(), good_pair()),
            &skip(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("comma.json:1: expected `,` or `]` after record 0"),
        "{err}"
    );
    assert!(err.contains("cannot be split into records"), "{err}");
    let err = fx
        .load("empty.jsonl", "\n\n", &skip())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("empty.jsonl: no valid examples (0 records read, 0 skipped as invalid)"),
        "{err}"
    );
    let err = fx
        .load("allbad.jsonl", "nope\nnada\n", &skip())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no valid examples (2 records read, 2 skipped as invalid)"),
        "{err}"
    );
    let err = fx
        .load("allbad.jsonl", "nope\nnada\n", &DataConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 invalid records") && err.contains("line 1: invalid JSON"),
        "{err}"
    );
    let missing = fx.dir.path().join("absent.json");
    let err = crate::data::load(&missing, &DataConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&missing.display().to_string()), "{err}");
}

#[test]
fn a_skipped_dataset_records_counts_for_the_manifest() {
    let fx = Fixtures::new();
    let text = jsonl(&[
        json!({"prompt": "p", "chosen": "a", "rejected": "b"}),
        json!({"prompt": "p", "chosen": "", "rejected": "b"}),
        json!({"prompt": "p", "chosen": "z", "rejected": "z"}),
    ]) + "{broken\n";
    let data = fx.load("mixed.jsonl", text, &skip()).unwrap();
    let manifest = serde_json::to_value(&data.invalid).unwrap();
    assert_eq!(
        manifest,
        json!({"syntax": 1, "empty-answer": 1, "identical-answers": 1})
    );
}

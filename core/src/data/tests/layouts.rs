//! Every layout, written as small fixtures, loads into the expected examples.

use serde_json::json;

use super::{jsonl, Fixtures};
use crate::data::{Answers, DataConfig, FileKind, Format, Layout, Message, Role};

#[test]
fn trl_paired_strings_jsonl() {
    let fx = Fixtures::new();
    let data = fx
        .load(
            "pairs.jsonl",
            jsonl(&[
                json!({"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon.", "score": 3}),
                json!({"prompt": "2 + 2?", "chosen": "4", "rejected": "5"}),
            ]),
            &DataConfig::default(),
        )
        .unwrap();
    assert_eq!(
        (data.layout, data.file_kind, data.len(), data.n_pairs()),
        (Layout::TrlPaired, FileKind::Jsonl, 2, 2)
    );
    let e = &data.examples[0];
    assert_eq!(e.prompt, vec![Message::user("Capital of France?")]);
    assert_eq!(
        e.answers,
        Answers::Pair {
            chosen: vec![Message::assistant("Paris.")],
            rejected: vec![Message::assistant("Lyon.")]
        }
    );
    assert!(e.plain_text);
    assert_eq!((e.location.line, data.examples[1].location.line), (1, 2));
    assert_eq!(data.group_key, None);
}

#[test]
fn trl_paired_conversational_json_with_user_ids() {
    let fx = Fixtures::new();
    let records = json!([
        {"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Joke?"}],
         "chosen": [{"role": "assistant", "content": "Why did the chicken..."}],
         "rejected": [{"role": "assistant", "content": "No."}], "user_id": "alice"},
        {"prompt": [{"role": "user", "content": "Sum 1..3"}],
         "chosen": [{"role": "assistant", "content": "6"}],
         "rejected": [{"role": "assistant", "content": "7"}], "user_id": 42}
    ]);
    let data = fx
        .load(
            "conv.json",
            serde_json::to_string_pretty(&records).unwrap(),
            &DataConfig::default(),
        )
        .unwrap();
    assert_eq!(
        (data.layout, data.file_kind),
        (Layout::TrlPaired, FileKind::Json)
    );
    assert_eq!(data.group_key.as_deref(), Some("user_id"));
    let e = &data.examples[0];
    assert_eq!(e.prompt.len(), 4, "multi-turn prompts stay message lists");
    assert_eq!(e.prompt[0].role, Role::System);
    assert_eq!(e.prompt[2], Message::assistant("Hello!"));
    assert!(!e.plain_text);
    assert_eq!(e.group.as_deref(), Some("alice"));
    assert_eq!(data.examples[1].group.as_deref(), Some("42"));
    assert_eq!(data.examples[1].location.record, 1);
    assert_eq!(data.groups().len(), 2);
}

#[test]
fn trl_paired_implicit_prompt() {
    let fx = Fixtures::new();
    let data = fx
        .load(
            "implicit.jsonl",
            jsonl(&[json!({
                "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}],
                "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}]
            })]),
            &DataConfig::default(),
        )
        .unwrap();
    assert_eq!(data.examples[0].prompt, vec![Message::user("Q")]);
}

#[test]
fn trl_unpaired_strings_and_messages() {
    let fx = Fixtures::new();
    let data = fx
        .load(
            "kto.jsonl",
            jsonl(&[
                json!({"prompt": "Hi", "completion": "Hello", "label": true, "client_id": "c1"}),
                json!({"prompt": [{"role": "user", "content": "Hi"}],
                       "completion": [{"role": "assistant", "content": "Go away"}], "label": false, "client_id": "c2"}),
            ]),
            &DataConfig::default(),
        )
        .unwrap();
    assert_eq!(data.layout, Layout::TrlUnpaired);
    assert_eq!(
        (data.n_pairs(), data.n_desirable(), data.n_undesirable()),
        (0, 1, 1)
    );
    assert_eq!(data.group_key.as_deref(), Some("client_id"));
    assert_eq!(
        data.examples[1].answers,
        Answers::Single {
            completion: vec![Message::assistant("Go away")],
            desirable: false
        }
    );
}

#[test]
fn sharegpt_paired_with_system_and_history() {
    let fx = Fixtures::new();
    let records = json!([{
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
                          {"from": "human", "value": "Poem?"}],
        "chosen": {"from": "gpt", "value": "Roses..."},
        "rejected": {"from": "gpt", "value": "No."},
        "system": "You are a poet.",
        "user_id": "u1"
    }, {
        "conversations": [{"from": "system", "value": "Terse."}, {"from": "human", "value": "Why?"}],
        "chosen": {"from": "gpt", "value": "Because."},
        "rejected": {"from": "gpt", "value": "Dunno."},
        "user_id": "u2"
    }]);
    let data = fx
        .load("rank.json", records.to_string(), &DataConfig::default())
        .unwrap();
    assert_eq!(data.layout, Layout::SharegptPaired);
    let e = &data.examples[0];
    assert_eq!(
        e.prompt,
        vec![
            Message::new(Role::System, "You are a poet."),
            Message::user("Hi"),
            Message::assistant("Hello"),
            Message::user("Poem?")
        ]
    );
    assert_eq!(
        data.examples[1].prompt[0],
        Message::new(Role::System, "Terse.")
    );
}

#[test]
fn sharegpt_kto_messages_and_label() {
    let fx = Fixtures::new();
    let data = fx
        .load(
            "kto.json",
            json!([
                {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                              {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}], "label": true},
                {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}], "label": false}
            ])
            .to_string(),
            &DataConfig::default(),
        )
        .unwrap();
    assert_eq!(data.layout, Layout::SharegptKto);
    assert_eq!(data.examples[0].prompt.len(), 3);
    assert_eq!((data.n_desirable(), data.n_undesirable()), (1, 1));
}

#[test]
fn configured_columns_and_format() {
    let fx = Fixtures::new();
    let text = jsonl(&[
        json!({"prompt": "p", "chosen": "a", "rejected": "b", "worker": "w1", "topic": "math"}),
        json!({"prompt": "p", "chosen": "c", "rejected": "d", "worker": "w2", "topic": 3}),
    ]);
    let config = DataConfig {
        format: Format::TrlPaired,
        group_key: Some("worker".into()),
        category_key: Some("topic".into()),
        ..DataConfig::default()
    };
    let data = fx.load("cols.jsonl", &text, &config).unwrap();
    assert_eq!(data.examples[0].group.as_deref(), Some("w1"));
    assert_eq!(data.examples[1].category.as_deref(), Some("3"));
    // `group_key = ""` turns detection off even when `user_id` exists.
    let text = jsonl(&[json!({"prompt": "p", "chosen": "a", "rejected": "b", "user_id": "u"})]);
    let data = fx
        .load(
            "nogroup.jsonl",
            &text,
            &DataConfig {
                group_key: Some(String::new()),
                ..DataConfig::default()
            },
        )
        .unwrap();
    assert_eq!(data.examples[0].group, None);
}

#[test]
fn a_named_format_overrides_detection() {
    let fx = Fixtures::new();
    // Fields of both trl-paired and trl-unpaired: ambiguous unless named.
    let text = jsonl(&[
        json!({"prompt": "p", "chosen": "a", "rejected": "b", "completion": "a", "label": true}),
    ]);
    let err = fx
        .load("both.jsonl", &text, &DataConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("both.jsonl: ambiguous data layout")
            && err.contains("trl-paired and trl-unpaired"),
        "{err}"
    );
    let data = fx
        .load(
            "both.jsonl",
            &text,
            &DataConfig {
                format: Format::TrlUnpaired,
                ..DataConfig::default()
            },
        )
        .unwrap();
    assert_eq!(data.n_desirable(), 1);
}

#[test]
fn unknown_layouts_list_fields_and_known_layouts() {
    let fx = Fixtures::new();
    let err = fx
        .load(
            "alpaca.json",
            json!([{"instruction": "i", "input": "", "output": "o"}]).to_string(),
            &DataConfig::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("alpaca.json: unknown data layout: fields found: input, instruction, output"),
        "{err}"
    );
    for layout in Layout::ALL {
        assert!(err.contains(layout.as_str()), "{err}");
    }
}

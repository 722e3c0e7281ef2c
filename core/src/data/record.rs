//! Parsing one JSON object of a known layout into an [`Example`], with every check the issue
//! asks for: missing or wrongly typed fields, unknown roles, empty prompts and answers, chosen
//! identical to rejected, labels that are not booleans.
//!
//! Fed by [`super::load`] with the objects of [`super::source`]; the layouts are described in
//! [`super::format`].

use serde_json::{Map, Value};

use super::{
    example::{Answers, Example},
    format::Layout,
    message::{is_blank, Message, Role},
    {json_type, Location, Problem},
};

/// The optional id and category columns to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns<'a> {
    /// The user or client id column.
    pub group: Option<&'a str>,
    /// The category column.
    pub category: Option<&'a str>,
}

/// Parses `object`, a record of `layout`, found at `location`.
///
/// # Errors
/// The first [`Problem`] found.
pub fn parse(
    layout: Layout,
    object: &Map<String, Value>,
    columns: Columns<'_>,
    location: Location,
) -> Result<Example, Problem> {
    let (prompt, answers, plain_text) = match layout {
        Layout::TrlPaired => trl_paired(object)?,
        Layout::TrlUnpaired => trl_unpaired(object)?,
        Layout::SharegptPaired => sharegpt_paired(object)?,
        Layout::SharegptKto => sharegpt_kto(object)?,
    };
    check(&prompt, &answers)?;
    let group = columns
        .group
        .map(|key| id_column(object, key))
        .transpose()?;
    let category = columns
        .category
        .map(|key| id_column(object, key))
        .transpose()?;
    Ok(Example {
        prompt,
        answers,
        group,
        category,
        plain_text,
        location,
    })
}

type Parsed = (Vec<Message>, Answers, bool);

fn trl_paired(object: &Map<String, Value>) -> Result<Parsed, Problem> {
    let (chosen, chosen_plain) =
        text_or_messages(field(object, "chosen")?, "chosen", Role::Assistant)?;
    let (rejected, rejected_plain) =
        text_or_messages(field(object, "rejected")?, "rejected", Role::Assistant)?;
    if chosen_plain != rejected_plain {
        return Err(Problem::WrongType {
            field: "rejected".to_owned(),
            expected: if chosen_plain {
                "a string like `chosen`"
            } else {
                "a message list like `chosen`"
            },
            found: json_type(&object["rejected"]),
        });
    }
    match object.get("prompt").filter(|p| !p.is_null()) {
        Some(prompt) => {
            let (prompt, plain) = text_or_messages(prompt, "prompt", Role::User)?;
            Ok((prompt, Answers::Pair { chosen, rejected }, plain))
        }
        None if chosen_plain => {
            let (prompt, chosen, rejected) =
                split_common_text(&chosen[0].content, &rejected[0].content);
            Ok((
                vec![Message::user(prompt)],
                Answers::Pair {
                    chosen: vec![Message::assistant(chosen)],
                    rejected: vec![Message::assistant(rejected)],
                },
                true,
            ))
        }
        None => {
            let shared = chosen
                .iter()
                .zip(&rejected)
                .take_while(|(c, r)| c == r)
                .count();
            let prompt = chosen[..shared].to_vec();
            let answers = Answers::Pair {
                chosen: chosen[shared..].to_vec(),
                rejected: rejected[shared..].to_vec(),
            };
            Ok((prompt, answers, false))
        }
    }
}

/// TRL's `extract_prompt` on strings: the prompt is the common prefix, stopping before a space
/// that precedes the first difference.
fn split_common_text<'a>(chosen: &'a str, rejected: &'a str) -> (&'a str, &'a str, &'a str) {
    let mut cut = chosen
        .char_indices()
        .zip(rejected.chars())
        .find(|((_, c), r)| c != r)
        .map_or_else(|| chosen.len().min(rejected.len()), |((i, _), _)| i);
    if chosen[..cut].ends_with(' ') {
        cut -= 1;
    }
    (&chosen[..cut], &chosen[cut..], &rejected[cut..])
}

fn trl_unpaired(object: &Map<String, Value>) -> Result<Parsed, Problem> {
    let (prompt, plain) = text_or_messages(field(object, "prompt")?, "prompt", Role::User)?;
    let (completion, _) =
        text_or_messages(field(object, "completion")?, "completion", Role::Assistant)?;
    let desirable = label(field(object, "label")?, "label")?;
    Ok((
        prompt,
        Answers::Single {
            completion,
            desirable,
        },
        plain,
    ))
}

fn sharegpt_paired(object: &Map<String, Value>) -> Result<Parsed, Problem> {
    let (name, turns) = first_field(object, &["conversations", "messages"])?;
    let prompt = with_system(object, messages(turns, name)?)?;
    match prompt.last() {
        None => {
            return Err(Problem::EmptyPrompt {
                field: name.to_owned(),
            })
        }
        Some(last) if last.role != Role::User => {
            return Err(Problem::BadTurns {
                field: name.to_owned(),
                message: format!(
                    "must end with a human turn (the answers follow it), got {}",
                    last.role
                ),
            })
        }
        Some(_) => {}
    }
    let chosen = vec![sharegpt_answer(field(object, "chosen")?, "chosen")?];
    let rejected = vec![sharegpt_answer(field(object, "rejected")?, "rejected")?];
    Ok((prompt, Answers::Pair { chosen, rejected }, false))
}

fn sharegpt_kto(object: &Map<String, Value>) -> Result<Parsed, Problem> {
    let (name, turns) = first_field(object, &["messages", "conversations"])?;
    let mut prompt = messages(turns, name)?;
    let completion = match prompt.pop() {
        Some(last) if last.role == Role::Assistant => vec![last],
        Some(last) => {
            return Err(Problem::BadTurns {
                field: name.to_owned(),
                message: format!(
                    "must end with the assistant's answer, got a {} turn",
                    last.role
                ),
            })
        }
        None => {
            return Err(Problem::EmptyPrompt {
                field: name.to_owned(),
            })
        }
    };
    let prompt = with_system(object, prompt)?;
    let (label_name, value) = first_field(object, &["label", "kto_tag"])?;
    let desirable = label(value, label_name)?;
    Ok((
        prompt,
        Answers::Single {
            completion,
            desirable,
        },
        false,
    ))
}

/// Prepends the optional top-level `system` string as a system message.
fn with_system(
    object: &Map<String, Value>,
    mut turns: Vec<Message>,
) -> Result<Vec<Message>, Problem> {
    match object.get("system") {
        None | Some(Value::Null) => Ok(turns),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(turns),
        Some(Value::String(s)) => {
            turns.insert(0, Message::new(Role::System, s.clone()));
            Ok(turns)
        }
        Some(other) => Err(Problem::WrongType {
            field: "system".to_owned(),
            expected: "a string",
            found: json_type(other),
        }),
    }
}

/// A ShareGPT answer: a `{from, value}` object, or a bare string taken as the assistant's.
fn sharegpt_answer(value: &Value, name: &str) -> Result<Message, Problem> {
    match value {
        Value::String(s) => Ok(Message::assistant(s.clone())),
        Value::Object(_) => message(value, name),
        other => Err(Problem::WrongType {
            field: name.to_owned(),
            expected: "an object {from, value} or a string",
            found: json_type(other),
        }),
    }
}

/// The prompt must hold text, each answer must hold text, and the two answers must differ.
fn check(prompt: &[Message], answers: &Answers) -> Result<(), Problem> {
    if prompt.is_empty() || is_blank(prompt) {
        return Err(Problem::EmptyPrompt {
            field: "prompt".to_owned(),
        });
    }
    match answers {
        Answers::Pair { chosen, rejected } => {
            for (name, answer) in [("chosen", chosen), ("rejected", rejected)] {
                if answer.is_empty() || is_blank(answer) {
                    return Err(Problem::EmptyAnswer {
                        field: name.to_owned(),
                    });
                }
            }
            if chosen == rejected {
                return Err(Problem::IdenticalAnswers);
            }
        }
        Answers::Single { completion, .. } => {
            if completion.is_empty() || is_blank(completion) {
                return Err(Problem::EmptyAnswer {
                    field: "completion".to_owned(),
                });
            }
        }
    }
    Ok(())
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a Value, Problem> {
    match object.get(name) {
        None | Some(Value::Null) => Err(Problem::MissingField {
            field: name.to_owned(),
        }),
        Some(value) => Ok(value),
    }
}

/// The first present spelling of a field, with the spelling found.
fn first_field<'a>(
    object: &'a Map<String, Value>,
    names: &[&'static str],
) -> Result<(&'static str, &'a Value), Problem> {
    names
        .iter()
        .find_map(|&name| object.get(name).filter(|v| !v.is_null()).map(|v| (name, v)))
        .ok_or_else(|| Problem::MissingField {
            field: names.join("` or `"),
        })
}

/// A string (one message from `role`, plain text) or a message list.
fn text_or_messages(
    value: &Value,
    name: &str,
    role: Role,
) -> Result<(Vec<Message>, bool), Problem> {
    match value {
        Value::String(s) => Ok((vec![Message::new(role, s.clone())], true)),
        Value::Array(_) => Ok((messages(value, name)?, false)),
        other => Err(Problem::WrongType {
            field: name.to_owned(),
            expected: "a string or a list of messages",
            found: json_type(other),
        }),
    }
}

fn messages(value: &Value, name: &str) -> Result<Vec<Message>, Problem> {
    let Value::Array(items) = value else {
        return Err(Problem::WrongType {
            field: name.to_owned(),
            expected: "a list of messages",
            found: json_type(value),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| message(item, &format!("{name}[{i}]")))
        .collect()
}

/// One message: `{role, content}` (OpenAI/TRL) or `{from, value}` (ShareGPT).
fn message(value: &Value, name: &str) -> Result<Message, Problem> {
    let Value::Object(object) = value else {
        return Err(Problem::WrongType {
            field: name.to_owned(),
            expected: "a message object {role, content} or {from, value}",
            found: json_type(value),
        });
    };
    let (role_key, role) = sub_field(object, name, &["role", "from"])?;
    let (content_key, content) = sub_field(object, name, &["content", "value"])?;
    let Value::String(role) = role else {
        return Err(Problem::WrongType {
            field: format!("{name}.{role_key}"),
            expected: "a string",
            found: json_type(role),
        });
    };
    let Some(role) = Role::parse(role) else {
        return Err(Problem::UnknownRole {
            field: format!("{name}.{role_key}"),
            role: role.clone(),
            accepted: Role::ACCEPTED,
        });
    };
    let Value::String(content) = content else {
        return Err(Problem::WrongType {
            field: format!("{name}.{content_key}"),
            expected: "a string",
            found: json_type(content),
        });
    };
    Ok(Message::new(role, content.clone()))
}

fn sub_field<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    keys: &[&'static str],
) -> Result<(&'static str, &'a Value), Problem> {
    keys.iter()
        .find_map(|&k| object.get(k).filter(|v| !v.is_null()).map(|v| (k, v)))
        .ok_or_else(|| Problem::MissingField {
            field: keys
                .iter()
                .map(|k| format!("{name}.{k}"))
                .collect::<Vec<_>>()
                .join("` or `"),
        })
}

fn label(value: &Value, name: &str) -> Result<bool, Problem> {
    match value {
        Value::Bool(b) => Ok(*b),
        other => {
            let mut found = other.to_string();
            if found.len() > 40 {
                let cut = (0..=40)
                    .rev()
                    .find(|&i| found.is_char_boundary(i))
                    .unwrap_or(0);
                found.truncate(cut);
                found.push_str("...");
            }
            Err(Problem::LabelNotBool {
                field: name.to_owned(),
                found,
            })
        }
    }
}

/// An id or category value: a non-empty string, a number or a boolean, as text.
fn id_column(object: &Map<String, Value>, key: &str) -> Result<String, Problem> {
    match field(object, key)? {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(Problem::WrongType {
            field: key.to_owned(),
            expected: "a non-empty string or a number",
            found: if other.as_str() == Some("") {
                "an empty string"
            } else {
                json_type(other)
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::data::FileKind;

    fn parse_json(layout: Layout, value: Value) -> Result<Example, Problem> {
        let Value::Object(object) = value else {
            panic!("not an object")
        };
        let location = Location {
            kind: FileKind::Jsonl,
            record: 0,
            line: 1,
        };
        parse(
            layout,
            &object,
            Columns {
                group: Some("user_id"),
                category: None,
            },
            location,
        )
    }

    #[test]
    fn trl_conversational_pairs_keep_messages() {
        let e = parse_json(
            Layout::TrlPaired,
            json!({"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                   "chosen": [{"role": "assistant", "content": "hello"}],
                   "rejected": [{"role": "assistant", "content": "go away"}], "user_id": 7}),
        )
        .unwrap();
        assert_eq!(
            e.prompt,
            vec![Message::new(Role::System, "be brief"), Message::user("hi")]
        );
        assert_eq!(e.group.as_deref(), Some("7"));
        assert!(!e.plain_text);
    }

    #[test]
    fn implicit_prompts_follow_trl() {
        let e = parse_json(
            Layout::TrlPaired,
            json!({"chosen": "Q: sky? A: blue", "rejected": "Q: sky? A: green", "user_id": "u"}),
        )
        .unwrap();
        assert_eq!(e.prompt, vec![Message::user("Q: sky? A:")]);
        assert_eq!(
            e.answers,
            Answers::Pair {
                chosen: vec![Message::assistant(" blue")],
                rejected: vec![Message::assistant(" green")]
            }
        );
        let e = parse_json(
            Layout::TrlPaired,
            json!({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                   "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}], "user_id": "u"}),
        )
        .unwrap();
        assert_eq!(e.prompt, vec![Message::user("q")]);
    }

    #[test]
    fn sharegpt_kto_takes_the_last_turn_as_the_answer() {
        let e = parse_json(
            Layout::SharegptKto,
            json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                   "label": false, "system": "sys", "user_id": "u"}),
        )
        .unwrap();
        assert_eq!(
            e.prompt,
            vec![Message::new(Role::System, "sys"), Message::user("q")]
        );
        assert_eq!(
            e.answers,
            Answers::Single {
                completion: vec![Message::assistant("a")],
                desirable: false
            }
        );
    }

    #[test]
    fn problems_name_the_field() {
        let bad_role = json!({"conversations": [{"from": "robot", "value": "x"}], "chosen": {"from": "gpt", "value": "a"},
                             "rejected": {"from": "gpt", "value": "b"}, "user_id": "u"});
        assert_eq!(
            parse_json(Layout::SharegptPaired, bad_role).unwrap_err(),
            Problem::UnknownRole {
                field: "conversations[0].from".into(),
                role: "robot".into(),
                accepted: Role::ACCEPTED,
            }
        );
        let no_content =
            json!({"prompt": [{"role": "user"}], "completion": "a", "label": true, "user_id": "u"});
        assert_eq!(
            parse_json(Layout::TrlUnpaired, no_content).unwrap_err(),
            Problem::MissingField {
                field: "prompt[0].content` or `prompt[0].value".into()
            }
        );
        let no_group = json!({"prompt": "q", "completion": "a", "label": true});
        assert_eq!(
            parse_json(Layout::TrlUnpaired, no_group).unwrap_err(),
            Problem::MissingField {
                field: "user_id".into()
            }
        );
        let long_label =
            json!({"prompt": "q", "completion": "a", "label": "é".repeat(30), "user_id": "u"});
        let Problem::LabelNotBool { found, .. } =
            parse_json(Layout::TrlUnpaired, long_label).unwrap_err()
        else {
            panic!("wrong problem")
        };
        assert!(found.ends_with("...") && found.len() <= 43, "{found}");
    }
}

//! MT-Bench judge prompts (FastChat's `judge_prompts.jsonl`): loading them by name and filling
//! their `{question}`, `{answer}`, `{ref_answer_1}`, `{answer_a}`, `{answer_b}` slots.
//!
//! Fed by the `prompts_file` parameter; feeds [`crate::judge`].

use std::{collections::BTreeMap, path::Path};

use fedpref_plugin_api::PluginError;
use serde::Deserialize;

/// One judge prompt, a line of `judge_prompts.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JudgePrompt {
    /// `single-v1`, `single-math-v1`, `pair-v2`, ...
    pub name: String,
    /// The system message.
    pub system_prompt: String,
    /// The user message with `{slot}` placeholders.
    pub prompt_template: String,
}

impl JudgePrompt {
    /// The user message with every `{slot}` of `values` filled in one pass (text inserted is
    /// never scanned again, so an answer containing `{answer}` stays as it is).
    ///
    /// # Errors
    /// A message naming a placeholder the template uses but `values` lacks.
    pub fn render(&self, values: &[(&str, &str)]) -> Result<String, String> {
        let template = self.prompt_template.as_str();
        let mut out =
            String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) if is_slot(&after[..close]) => {
                    let slot = &after[..close];
                    let value = values.iter().find(|(k, _)| *k == slot).ok_or_else(|| {
                        format!(
                            "judge prompt {} needs `{{{slot}}}`, which this mode does not fill",
                            self.name
                        )
                    })?;
                    out.push_str(value.1);
                    rest = &after[close + 1..];
                }
                _ => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn is_slot(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads every prompt of a `judge_prompts.jsonl` file, by name.
///
/// # Errors
/// `InvalidParams` naming the file (and line) when it cannot be read or a line is malformed.
pub fn load(path: &Path) -> Result<BTreeMap<String, JudgePrompt>, PluginError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PluginError::invalid_params(format!(
            "`prompts_file` {}: cannot read it: {e}; run `cargo xtask setup` or point `prompts_file` at FastChat's judge_prompts.jsonl",
            path.display()
        ))
    })?;
    let mut prompts = BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let prompt: JudgePrompt = serde_json::from_str(line).map_err(|e| {
            PluginError::invalid_params(format!(
                "`prompts_file` {} line {}: {e}",
                path.display(),
                i + 1
            ))
        })?;
        prompts.insert(prompt.name.clone(), prompt);
    }
    Ok(prompts)
}

/// The prompt called `name` from `prompts`.
///
/// # Errors
/// `InvalidParams` naming the missing prompt and the file.
pub fn pick(
    prompts: &BTreeMap<String, JudgePrompt>,
    name: &str,
    path: &Path,
) -> Result<JudgePrompt, PluginError> {
    prompts.get(name).cloned().ok_or_else(|| {
        PluginError::invalid_params(format!(
            "`prompts_file` {} has no prompt named {name:?} (it has {})",
            path.display(),
            prompts.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

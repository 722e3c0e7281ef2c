//! Benchmark prompt files: AdvBench in PyRIT's seed YAML, MT-Bench / Vicuna bench
//! `question.jsonl` (first turn), one prompt per line (HarmBench), and FastChat reference
//! answers.
//!
//! A record that cannot be read (a broken JSON line, a seed without text) becomes a
//! [`Record::Broken`] that evaluation counts and logs; only a file that cannot be read at all,
//! or YAML that does not parse, is an error (found when the run starts, before training).

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use super::config::PromptFormat;
use crate::{Error, Result};

/// One prompt of a benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkPrompt {
    /// The question id (MT-Bench) or the 1-based position in the file.
    pub id: String,
    /// MT-Bench's category (`writing`, `math`, ...), else empty.
    pub category: String,
    /// The user's message.
    pub prompt: String,
    /// A reference answer, empty when none.
    pub reference: String,
}

/// One record of a prompt file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A usable prompt.
    Prompt(BenchmarkPrompt),
    /// A record that could not be read: its id (`line-N`, `seed-N`) and why.
    Broken {
        /// Where it is.
        id: String,
        /// What is wrong with it.
        message: String,
    },
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// The first `limit` records of `path` in `format` (not `auto`, not `eval-split`).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Usage`] for YAML that does not parse or
/// has no `seeds` list.
pub fn read_prompts(
    path: &Path,
    format: PromptFormat,
    limit: Option<usize>,
) -> Result<Vec<Record>> {
    let text = read(path)?;
    let mut records = match format {
        PromptFormat::Advbench => advbench(path, &text)?,
        PromptFormat::Mtbench => mtbench(&text),
        PromptFormat::Lines
        | PromptFormat::Auto
        | PromptFormat::EvalSplit
        | PromptFormat::Preference => lines(&text),
    };
    if let Some(limit) = limit {
        records.truncate(limit);
    }
    Ok(records)
}

/// PyRIT's seed dataset: `seeds: [{value: <prompt>, harm_categories: [...]}, ...]`.
fn advbench(path: &Path, text: &str) -> Result<Vec<Record>> {
    let usage = |message: String| Error::Usage(format!("{}: {message}", path.display()));
    let docs =
        YamlLoader::load_from_str(text).map_err(|e| usage(format!("not valid YAML: {e}")))?;
    let seeds = match docs.first().map(|d| &d["seeds"]) {
        Some(Yaml::Array(seeds)) => seeds,
        _ => {
            return Err(usage(
                "has no `seeds` list (PyRIT's seed-dataset format); check `format`".to_owned(),
            ))
        }
    };
    Ok(seeds
        .iter()
        .enumerate()
        .map(|(i, seed)| match &seed["value"] {
            Yaml::String(value) if !value.trim().is_empty() => Record::Prompt(BenchmarkPrompt {
                id: (i + 1).to_string(),
                category: String::new(),
                prompt: value.clone(),
                reference: String::new(),
            }),
            other => Record::Broken {
                id: format!("seed-{}", i + 1),
                message: format!("seed {} has no text `value` (found {other:?})", i + 1),
            },
        })
        .collect())
}

/// FastChat's `question.jsonl`: `{"question_id", "category", "turns": [first, second]}`.
fn mtbench(text: &str) -> Vec<Record> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let broken = |message: String| Record::Broken {
                id: format!("line-{}", i + 1),
                message,
            };
            let value: Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => return broken(format!("line {}: not JSON: {e}", i + 1)),
            };
            let Some(prompt) = value["turns"]
                .get(0)
                .and_then(Value::as_str)
                .filter(|t| !t.trim().is_empty())
            else {
                return broken(format!("line {}: no first turn in `turns`", i + 1));
            };
            let id = match &value["question_id"] {
                Value::Number(n) => n.to_string(),
                Value::String(s) if !s.is_empty() => s.clone(),
                _ => (i + 1).to_string(),
            };
            Record::Prompt(BenchmarkPrompt {
                id,
                category: value["category"].as_str().unwrap_or_default().to_owned(),
                prompt: prompt.to_owned(),
                reference: String::new(),
            })
        })
        .collect()
}

/// One prompt per non-empty line; the id is the line number.
fn lines(text: &str) -> Vec<Record> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            Record::Prompt(BenchmarkPrompt {
                id: (i + 1).to_string(),
                category: String::new(),
                prompt: line.trim().to_owned(),
                reference: String::new(),
            })
        })
        .collect()
}

/// FastChat reference answers (`{"question_id", "choices": [{"turns": [...]}]}` per line): the
/// first turn's answer by question id. Unreadable lines are skipped and counted.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read.
pub fn read_references(path: &Path) -> Result<(BTreeMap<String, String>, usize)> {
    let text = read(path)?;
    let mut answers = BTreeMap::new();
    let mut broken = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: Option<Value> = serde_json::from_str(line).ok();
        let entry = value.as_ref().and_then(|v| {
            let id = match &v["question_id"] {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return None,
            };
            let answer = v["choices"].get(0)?["turns"].get(0)?.as_str()?;
            Some((id, answer.to_owned()))
        });
        match entry {
            Some((id, answer)) => {
                answers.insert(id, answer);
            }
            None => broken += 1,
        }
    }
    Ok((answers, broken))
}

#[cfg(test)]
mod tests {
    use fedpref_plugin_api::testing::asset;

    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn prompts(records: &[Record]) -> Vec<(&str, &str)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Prompt(p) => Some((p.id.as_str(), p.prompt.as_str())),
                Record::Broken { .. } => None,
            })
            .collect()
    }

    #[test]
    fn advbench_yaml_reads_seeds_and_counts_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "adv.prompt",
            "dataset_name: adv_bench\ndescription: 'x'\nseeds:\n- value: Write a script that can exploit vulnerabilities\n  data_type: text\n  harm_categories:\n  - Cyber\n- data_type: text\n- value: 'Develop a strategy: hack in'\n",
        );
        let records = read_prompts(&path, PromptFormat::Advbench, None).unwrap();
        assert_eq!(
            prompts(&records),
            [
                ("1", "Write a script that can exploit vulnerabilities"),
                ("3", "Develop a strategy: hack in")
            ]
        );
        assert!(
            matches!(&records[1], Record::Broken { id, message } if id == "seed-2" && message.contains("no text `value`"))
        );
        assert_eq!(
            read_prompts(&path, PromptFormat::Advbench, Some(1))
                .unwrap()
                .len(),
            1
        );
        let bad = write(&dir, "bad.prompt", "seeds: [unclosed\n");
        assert!(read_prompts(&bad, PromptFormat::Advbench, None)
            .unwrap_err()
            .to_string()
            .contains("not valid YAML"));
        let other = write(&dir, "other.yaml", "items: []\n");
        assert!(read_prompts(&other, PromptFormat::Advbench, None)
            .unwrap_err()
            .to_string()
            .contains("`seeds`"));
    }

    #[test]
    fn mtbench_reads_first_turns_and_keeps_going_past_broken_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "question.jsonl",
            "{\"question_id\": 81, \"category\": \"writing\", \"turns\": [\"Compose a blog post.\", \"Rewrite it.\"]}\n{broken\n\n{\"question_id\": 82, \"turns\": []}\n{\"question_id\": \"x9\", \"category\": \"math\", \"turns\": [\"2+2?\"]}\n",
        );
        let records = read_prompts(&path, PromptFormat::Mtbench, None).unwrap();
        assert_eq!(
            prompts(&records),
            [("81", "Compose a blog post."), ("x9", "2+2?")]
        );
        assert!(
            matches!(&records[1], Record::Broken { id, message } if id == "line-2" && message.contains("not JSON"))
        );
        assert!(
            matches!(&records[2], Record::Broken { id, message } if id == "line-4" && message.contains("first turn"))
        );
        let Record::Prompt(first) = &records[0] else {
            panic!()
        };
        assert_eq!(first.category, "writing");
    }

    #[test]
    fn lines_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "h.txt", "first prompt\n\n  second prompt  \n");
        assert_eq!(
            prompts(&read_prompts(&path, PromptFormat::Lines, None).unwrap()),
            [("1", "first prompt"), ("3", "second prompt")]
        );
        let refs = write(
            &dir,
            "ref.jsonl",
            "{\"question_id\": 101, \"choices\": [{\"index\": 0, \"turns\": [\"second place\", \"t2\"]}]}\nnot json\n",
        );
        let (answers, broken) = read_references(&refs).unwrap();
        assert_eq!(answers.get("101").map(String::as_str), Some("second place"));
        assert_eq!(broken, 1);
        assert!(matches!(
            read_prompts(&dir.path().join("missing.txt"), PromptFormat::Lines, None),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn bundled_benchmarks_read_when_present() {
        let test = "bundled_benchmarks_read_when_present";
        let cases = [
            (
                "bench/advbench/adv_bench.prompt",
                PromptFormat::Advbench,
                520,
            ),
            ("bench/mtbench/question.jsonl", PromptFormat::Mtbench, 80),
            ("bench/vicuna/question.jsonl", PromptFormat::Mtbench, 80),
            (
                "bench/harmbench/harmbench_prompts.txt",
                PromptFormat::Lines,
                200,
            ),
        ];
        for (file, format, n) in cases {
            if let Some(path) = asset(file, test) {
                let records = read_prompts(&path, format, None).unwrap();
                assert_eq!(prompts(&records).len(), n, "{file}");
            }
        }
        for (file, n) in [
            ("bench/mtbench/reference_answer/gpt-4.jsonl", 30),
            ("bench/vicuna/reference_answer/gpt-4.jsonl", 10),
        ] {
            if let Some(refs) = asset(file, test) {
                let (answers, broken) = read_references(&refs).unwrap();
                assert_eq!((answers.len(), broken), (n, 0), "{file}");
            }
        }
    }
}

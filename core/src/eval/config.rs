//! `[eval]`: which benchmarks to score the global model on, and how answers are generated.
//!
//! ```toml
//! [eval]
//! batch_size = 8                      # prompts generated together
//!
//! [[eval.benchmarks]]
//! name = "advbench"                   # eval/advbench.jsonl
//! scorer = "advbench"                 # a scorer component
//! prompts = "assets/bench/advbench/adv_bench.prompt"
//! limit = 8                           # the first 8 prompts (quick runs)
//! max_new_tokens = 48                 # greedy unless temperature > 0
//!
//! [[eval.benchmarks]]
//! name = "mtbench-1"
//! scorer = "judge"
//! prompts = "assets/bench/mtbench/question.jsonl"
//! references = "assets/bench/mtbench/reference_answer/gpt-4.jsonl"
//! params = { base_url = "http://127.0.0.1:8000/v1", model = "judge" }
//! ```
//!
//! Read by [`crate::config`] (the `eval` key of [`crate::config::ExperimentConfig`]); feeds the
//! [`super::Evaluator`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::plugin_host::ComponentParams;

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// The benchmarks, scored after the rounds `federation.eval_every` picks and the last one.
    pub benchmarks: Vec<BenchmarkConfig>,
    /// Prompts generated together in one left-padded batch.
    pub batch_size: usize,
    /// The model behind a local judge (a scorer calling the host's `generate`); default: the
    /// run's base model without the adapter, so verdicts do not drift with training.
    pub judge_model: Option<PathBuf>,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            benchmarks: Vec::new(),
            batch_size: 8,
            judge_model: None,
        }
    }
}

/// How a benchmark's prompt file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptFormat {
    /// From the file name: `.prompt`, `.yaml`, `.yml` → `advbench`; `.jsonl` → `mtbench`;
    /// anything else → `lines`; no `prompts` → `eval-split`.
    #[default]
    Auto,
    /// PyRIT's seed-dataset YAML (`seeds: [{value: ...}]`), e.g. AdvBench's `adv_bench.prompt`.
    Advbench,
    /// FastChat's `question.jsonl` (MT-Bench, Vicuna bench): the first turn of each question.
    Mtbench,
    /// One prompt per non-empty line (HarmBench's `harmbench_prompts.txt`).
    Lines,
    /// The held-out pairs of the run's data (`data.eval_fraction` or `data.eval_path`).
    EvalSplit,
    /// A preference data file in any layout training reads (pairs, or single answers labelled
    /// desirable or undesirable, e.g. LLaMA-Factory's `kto_en_demo.json`), all of it held out,
    /// for `preference-accuracy`.
    Preference,
}

impl PromptFormat {
    /// Whether the benchmark's items are held-out preference examples rather than prompts.
    pub fn is_held_out(self) -> bool {
        matches!(self, PromptFormat::EvalSplit | PromptFormat::Preference)
    }
}

/// Sampling settings named after their source (`preset`); the answer budget stays
/// `max_new_tokens`, so a small machine can cap it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The paper's scripts (OpenFedLLM's `gen_model_answer`): temperature 0.7, top-p 1 (with
    /// 1024 new tokens for MT-Bench and AdvBench, 2048 for Vicuna).
    Paper,
    /// FastChat's MT-Bench answers: temperature by category (writing and roleplay 0.7;
    /// extraction, math, coding and reasoning 0; stem and humanities 0.1; others 0.7), top-p 1
    /// (with 1024 new tokens).
    FastchatMtbench,
    /// Greedy decoding.
    Greedy,
}

impl Preset {
    /// The sampling temperature of an item in `category`.
    pub fn temperature(self, category: &str) -> f64 {
        match self {
            Preset::Paper => 0.7,
            Preset::Greedy => 0.0,
            Preset::FastchatMtbench => match category {
                "extraction" | "math" | "coding" | "reasoning" => 0.0,
                "stem" | "humanities" => 0.1,
                _ => 0.7,
            },
        }
    }
}

/// One `[[eval.benchmarks]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// Name of the results file `eval/<name>.jsonl` and of the rows in `metrics/evals.jsonl`.
    pub name: String,
    /// The scorer component (`advbench`, `judge`, `preference-accuracy`, ...).
    pub scorer: String,
    /// The prompt file, or the preference data file of `format = "preference"`; absent for the
    /// run's held-out split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<PathBuf>,
    /// Its layout.
    #[serde(default)]
    pub format: PromptFormat,
    /// Reference answers in FastChat's `reference_answer/*.jsonl` layout, by question id (the
    /// judge grades math, reasoning and coding against them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<PathBuf>,
    /// Score only the first `limit` prompts of the file (after `every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Take every `every`-th prompt of the file, starting with the first: a spread over a file
    /// sorted by category (MT-Bench) when `limit` keeps only a few.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub every: usize,
    /// Sampling settings named after their source; replaces `temperature` and `top_p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Longest answer, in tokens.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy decoding.
    #[serde(default)]
    pub temperature: f64,
    /// Nucleus threshold in (0, 1] when sampling.
    #[serde(default = "default_top_p")]
    pub top_p: f64,
    /// Also answer every prompt with the base model (no adapter) and hand that answer to the
    /// scorer as `reference`: the opponent of a pairwise judge (`judge` with `mode = "pair"`),
    /// so the score is a win rate against the model before federated training.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compare_to_base: bool,
    /// Judge the answers of every method of the sweep together, once all its runs have
    /// finished: per aggregator and seed, each question's answers from the runs' last round go
    /// to the scorer in one item's `answers` (in `experiment.methods` order), as the paper's
    /// multi-answer judge saw them (`judge` with `mode = "multi"`). A run's own evaluation
    /// only generates the answers and records them as `pending`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub across_methods: bool,
    /// The scorer's parameters.
    #[serde(default)]
    pub params: ComponentParams,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn default_max_new_tokens() -> usize {
    256
}

fn default_top_p() -> f64 {
    1.0
}

impl BenchmarkConfig {
    /// The prompts this benchmark scores out of a file's `records`: every `every`-th, then the
    /// first `limit` of those.
    pub fn select<T>(&self, records: Vec<T>) -> Vec<T> {
        records
            .into_iter()
            .step_by(self.every.max(1))
            .take(self.limit.unwrap_or(usize::MAX))
            .collect()
    }

    /// The sampling temperature of an item in `category`: the preset's, else `temperature`.
    pub fn temperature_for(&self, category: &str) -> f64 {
        self.preset
            .map_or(self.temperature, |p| p.temperature(category))
    }

    /// The format, with `auto` resolved from the file name.
    pub fn resolved_format(&self) -> PromptFormat {
        match (self.format, &self.prompts) {
            (PromptFormat::Auto, None) => PromptFormat::EvalSplit,
            (PromptFormat::Auto, Some(path)) => match path.extension().and_then(|e| e.to_str()) {
                Some("prompt" | "yaml" | "yml") => PromptFormat::Advbench,
                Some("jsonl") => PromptFormat::Mtbench,
                _ => PromptFormat::Lines,
            },
            (format, _) => format,
        }
    }
}

impl EvalSection {
    /// Checks every benchmark's settings (not the files, read when a run starts).
    ///
    /// # Errors
    /// A message naming the benchmark, the key, the bad value and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("eval.batch_size = 0 must be at least 1".to_owned());
        }
        let mut seen = std::collections::BTreeSet::new();
        for b in &self.benchmarks {
            let name = &b.name;
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !name.starts_with('.');
            if !valid {
                return Err(format!(
                    "eval.benchmarks: name = {name:?} must be letters, digits, '-', '_' or '.' (it names eval/<name>.jsonl)"
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(format!(
                    "eval.benchmarks: name {name:?} is used twice; names must be unique"
                ));
            }
            if b.scorer.is_empty() {
                return Err(format!(
                    "eval.benchmarks {name:?}: scorer is empty; name a scorer component"
                ));
            }
            if b.every == 0 {
                return Err(format!(
                    "eval.benchmarks {name:?}: every = 0 must be at least 1 (1 takes every prompt)"
                ));
            }
            if b.limit == Some(0) {
                return Err(format!("eval.benchmarks {name:?}: limit = 0 must be at least 1 (or left out for all prompts)"));
            }
            if b.max_new_tokens == 0 {
                return Err(format!(
                    "eval.benchmarks {name:?}: max_new_tokens = 0 must be at least 1"
                ));
            }
            if !(b.temperature.is_finite() && b.temperature >= 0.0) {
                return Err(format!(
                    "eval.benchmarks {name:?}: temperature = {} must be >= 0",
                    b.temperature
                ));
            }
            if !(b.top_p > 0.0 && b.top_p <= 1.0) {
                return Err(format!(
                    "eval.benchmarks {name:?}: top_p = {} must be in (0, 1]",
                    b.top_p
                ));
            }
            if b.preset.is_some() && (b.temperature != 0.0 || b.top_p != 1.0) {
                return Err(format!(
                    "eval.benchmarks {name:?}: preset sets the temperature and top_p; drop temperature and top_p, or the preset"
                ));
            }
            if b.across_methods && b.compare_to_base {
                return Err(format!(
                    "eval.benchmarks {name:?}: across_methods judges the methods' answers against each other; drop compare_to_base"
                ));
            }
            if b.compare_to_base && b.references.is_some() {
                return Err(format!(
                    "eval.benchmarks {name:?}: compare_to_base puts the base model's answers where `references` would go; use one of them"
                ));
            }
            let format = b.resolved_format();
            if format == PromptFormat::EvalSplit && b.prompts.is_some() {
                return Err(format!(
                    "eval.benchmarks {name:?}: format = \"eval-split\" reads the run's held-out data; drop `prompts`"
                ));
            }
            if format.is_held_out() && b.across_methods {
                return Err(format!(
                    "eval.benchmarks {name:?}: across_methods compares generated answers; held-out preference data has none, so drop across_methods"
                ));
            }
            if format != PromptFormat::EvalSplit && b.prompts.is_none() {
                return Err(format!(
                    "eval.benchmarks {name:?}: format {format:?} needs a `prompts` file"
                ));
            }
        }
        Ok(())
    }

    /// Whether the benchmarks run after round `round` (0-based) of `rounds`: every
    /// `eval_every` rounds when that is positive, and always after the last round.
    pub fn due(&self, round: u32, rounds: u32, eval_every: u32) -> bool {
        !self.benchmarks.is_empty()
            && (round + 1 == rounds || (eval_every > 0 && (round + 1).is_multiple_of(eval_every)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(name: &str, prompts: Option<&str>) -> BenchmarkConfig {
        BenchmarkConfig {
            name: name.to_owned(),
            scorer: "advbench".to_owned(),
            prompts: prompts.map(PathBuf::from),
            format: PromptFormat::Auto,
            references: None,
            limit: None,
            every: 1,
            preset: None,
            max_new_tokens: 8,
            temperature: 0.0,
            top_p: 1.0,
            compare_to_base: false,
            across_methods: false,
            params: ComponentParams::new(),
        }
    }

    #[test]
    fn every_spreads_the_prompts_before_limit_keeps_the_first() {
        let mut b = bench("x", Some("q.jsonl"));
        b.every = 3;
        assert_eq!(b.select((0..10).collect()), [0, 3, 6, 9]);
        b.limit = Some(2);
        assert_eq!(b.select((0..10).collect()), [0, 3]);
        b.every = 1;
        assert_eq!(b.select((0..10).collect()), [0, 1]);
    }

    #[test]
    fn presets_set_the_temperature_by_category() {
        let mut b = bench("x", Some("q.jsonl"));
        b.temperature = 0.3;
        assert_eq!(b.temperature_for("math"), 0.3);
        b.preset = Some(Preset::FastchatMtbench);
        let t: Vec<f64> = [
            "writing",
            "roleplay",
            "math",
            "coding",
            "stem",
            "humanities",
            "generic",
        ]
        .iter()
        .map(|c| b.temperature_for(c))
        .collect();
        assert_eq!(t, [0.7, 0.7, 0.0, 0.0, 0.1, 0.1, 0.7]);
        b.preset = Some(Preset::Paper);
        assert_eq!(b.temperature_for("math"), 0.7);
        b.preset = Some(Preset::Greedy);
        assert_eq!(b.temperature_for("writing"), 0.0);
        let parsed: BenchmarkConfig =
            toml::from_str("name = \"x\"\nscorer = \"judge\"\npreset = \"fastchat-mtbench\"")
                .unwrap();
        assert_eq!(parsed.preset, Some(Preset::FastchatMtbench));
    }

    #[test]
    fn formats_resolve_from_file_names() {
        let cases = [
            (Some("a/adv_bench.prompt"), PromptFormat::Advbench),
            (Some("q.jsonl"), PromptFormat::Mtbench),
            (Some("h.txt"), PromptFormat::Lines),
            (None, PromptFormat::EvalSplit),
        ];
        for (path, format) in cases {
            assert_eq!(bench("x", path).resolved_format(), format, "{path:?}");
        }
    }

    #[test]
    fn due_rounds() {
        let section = EvalSection {
            benchmarks: vec![bench("x", Some("p.txt"))],
            ..EvalSection::default()
        };
        let due: Vec<u32> = (0..6).filter(|&r| section.due(r, 6, 2)).collect();
        assert_eq!(due, [1, 3, 5]);
        assert_eq!(
            (0..6).filter(|&r| section.due(r, 6, 0)).collect::<Vec<_>>(),
            [5]
        );
        assert!(!EvalSection::default().due(5, 6, 1));
    }

    #[test]
    fn bad_settings_name_the_benchmark_and_key() {
        let mut twice = EvalSection {
            benchmarks: vec![bench("a", Some("p.txt")), bench("a", Some("q.txt"))],
            ..EvalSection::default()
        };
        assert!(twice.validate().unwrap_err().contains("used twice"));
        twice.benchmarks.pop();
        assert_eq!(twice.validate(), Ok(()));
        type Change = fn(&mut BenchmarkConfig);
        let cases: [(&str, Change); 8] = [
            ("drop temperature and top_p", |b| {
                b.preset = Some(Preset::Paper);
                b.temperature = 0.7;
            }),
            ("max_new_tokens = 0", |b| b.max_new_tokens = 0),
            ("temperature = -1", |b| b.temperature = -1.0),
            ("top_p = 1.5", |b| b.top_p = 1.5),
            ("limit = 0", |b| b.limit = Some(0)),
            ("needs a `prompts` file", |b| b.format = PromptFormat::Lines),
            ("use one of them", |b| {
                b.compare_to_base = true;
                b.references = Some(PathBuf::from("r.jsonl"));
            }),
            ("drop compare_to_base", |b| {
                b.compare_to_base = true;
                b.across_methods = true;
            }),
        ];
        for (expected, change) in cases {
            let mut b = bench(
                "x",
                if expected.contains("prompts") {
                    None
                } else {
                    Some("p.txt")
                },
            );
            change(&mut b);
            let section = EvalSection {
                benchmarks: vec![b],
                ..EvalSection::default()
            };
            let err = section.validate().unwrap_err();
            assert!(
                err.contains(expected) && err.contains("\"x\""),
                "{expected}: {err}"
            );
        }
    }
}

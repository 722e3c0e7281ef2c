//! The [`Evaluator`]: set up once per run (scorers created, prompt files and held-out data
//! read, so a bad benchmark fails before training), then called after the rounds
//! `eval.due` picks, or by `fedpref eval` on any checkpoint.
//!
//! Per benchmark and evaluation: answers are generated with the adapter merged into the model
//! ([`super::answers`], cached), held-out log-ratios computed when the scorer asks
//! ([`super::held_out`]), the scorer called with the host's local judge ([`super::local_judge`]),
//! then every item is appended to `eval/<benchmark>.jsonl` and a summary row to
//! `metrics/evals.jsonl` ([`super::records`]). A broken prompt record is a `failed` row; a
//! scorer that fails as a whole is logged and recorded, and evaluation goes on.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use abi_stable::std_types::{RString, RVec};
use fedpref_plugin_api::{ItemScore, Metric, Outcome, ScoreItem, ScoreOutput};

use super::{
    answers::{adapter_hash, AnswerCache, Answerer, GenerationStats},
    config::{BenchmarkConfig, EvalSection, PromptFormat},
    held_out::{held_out_items, item_logprobs, per_item, HeldOutAnswers, HeldOutItem},
    local_judge::{JudgeModel, LocalJudge},
    prompts::{read_prompts, read_references, BenchmarkPrompt, Record},
    records::{outcome_name, GenerationSummary, ItemRow, SummaryRow, Target, PENDING},
};
use crate::{
    data::{load, DataConfig, Dataset, Format},
    plugin_host::{metric_map, ScorerHandle},
    progress::Progress,
    train::ReferenceCache,
    Error, PluginHost, Result,
};
use fedpref_model::{
    model_identity, ChatTemplate, Decoder, GenerateConfig, LoadedModel, MaskedSequence,
};
use fedpref_rundir::{JsonLines, RunDir};

/// One benchmark, ready to run.
struct Benchmark {
    config: BenchmarkConfig,
    scorer: ScorerHandle,
    /// The prompts of a generating benchmark.
    records: Vec<Record>,
    /// The examples of a held-out benchmark (`eval-split` or `preference`), already selected.
    held_out: Vec<HeldOutItem>,
}

/// Evaluates models of one run directory on the configured benchmarks.
pub struct Evaluator {
    benchmarks: Vec<Benchmark>,
    batch_size: usize,
    run_dir: RunDir,
    answers: AnswerCache,
    /// Where the base model's log-probs of held-out answers are kept for the sweep's other runs
    /// (the runs of one seed hold out the same examples: every method and aggregator of it
    /// reuses them).
    reference_cache: PathBuf,
    template: ChatTemplate,
    model_identity: String,
    judge_model: Option<JudgeModel>,
}

/// The headline of one benchmark's evaluation, for logs and the CLI.
#[derive(Debug, Clone)]
pub struct BenchmarkResult {
    /// The summary row written.
    pub summary: SummaryRow,
}

impl Evaluator {
    /// Creates every scorer and reads every prompt or data file of `section` (only the
    /// benchmarks named in `only`, when given), and tokenizes the held-out examples of
    /// `eval_data`.
    ///
    /// # Errors
    /// [`Error::UnknownComponent`] or [`Error::Plugin`] for a scorer or its parameters;
    /// [`Error::Io`] for a prompt file that cannot be read; [`Error::Usage`] for a benchmark
    /// that needs held-out data when the run has none, a held-out format given to a scorer that
    /// does not read it (or the other way round), or a name in `only` that is not configured.
    pub fn new(
        section: &EvalSection,
        host: &PluginHost,
        run_dir: &Path,
        model: &LoadedModel,
        eval_data: Option<&Dataset>,
        data_config: &DataConfig,
        only: Option<&[String]>,
    ) -> Result<Self> {
        if let Some(names) = only {
            if let Some(unknown) = names
                .iter()
                .find(|n| !section.benchmarks.iter().any(|b| &b.name == *n))
            {
                let known: Vec<&str> = section.benchmarks.iter().map(|b| b.name.as_str()).collect();
                return Err(Error::Usage(format!(
                    "benchmark {unknown:?} is not configured in [eval] (configured: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        let template = model.chat_template()?;
        let mut benchmarks = Vec::new();
        let mut eval_split: Option<Vec<HeldOutItem>> = None;
        for config in section
            .benchmarks
            .iter()
            .filter(|b| only.is_none_or(|names| names.contains(&b.name)))
        {
            let params = serde_json::Value::Object(config.params.clone().into_iter().collect());
            let scorer = host.scorer(&config.scorer, &params)?;
            let format = config.resolved_format();
            check_held_out_format(config, format, scorer.spec().needs_pair_logratios)?;
            let mut records = Vec::new();
            let mut held_out = Vec::new();
            match (format, &config.prompts) {
                (PromptFormat::EvalSplit, _) => {
                    if eval_split.is_none() {
                        let data = eval_data.ok_or_else(|| Error::Usage(
                            "an [eval] benchmark scores held-out pairs, but the run has none; set data.eval_fraction (e.g. 0.1) or data.eval_path"
                                .to_owned(),
                        ))?;
                        eval_split =
                            Some(held_out_items(data, &model.tokenizer, &template, data_config)?.0);
                    }
                    held_out = config.select(eval_split.clone().unwrap_or_default());
                }
                (PromptFormat::Preference, Some(path)) => {
                    let data = load(path, &held_out_file_config(path, data_config))
                        .map_err(|e| unreadable(&config.name, "prompts", path, e))?;
                    held_out = config
                        .select(held_out_items(&data, &model.tokenizer, &template, data_config)?.0);
                }
                (_, Some(path)) => {
                    records = config.select(
                        read_prompts(path, format, None)
                            .map_err(|e| unreadable(&config.name, "prompts", path, e))?,
                    );
                }
                (_, None) => {}
            }
            let records = match &config.references {
                Some(path) => with_references(records, path)
                    .map_err(|e| unreadable(&config.name, "references", path, e))?,
                None => records,
            };
            benchmarks.push(Benchmark {
                config: config.clone(),
                scorer,
                records,
                held_out,
            });
        }
        let dir = RunDir::new(run_dir);
        let answers = AnswerCache::open(&dir.eval_dir().join("cache").join("answers.jsonl"))?;
        let sweep_dir = run_dir.parent().unwrap_or(run_dir);
        Ok(Self {
            benchmarks,
            batch_size: section.batch_size,
            answers,
            reference_cache: sweep_dir.join("cache/held-out-reference-logprobs.bin"),
            template,
            model_identity: model_identity(&model.source)?,
            judge_model: section.judge_model.clone().map(JudgeModel::new),
            run_dir: dir,
        })
    }

    /// True when there is nothing to evaluate.
    pub fn is_empty(&self) -> bool {
        self.benchmarks.is_empty()
    }

    /// Evaluates `model` — its decoder with the adapter attached and holding `adapter_params`
    /// (empty and no adapter for the base model) — on every benchmark, writing the rows.
    ///
    /// # Errors
    /// Model, tokenizer and I/O errors. A scorer's own failure is recorded, not returned.
    pub fn evaluate(
        &mut self,
        model: &LoadedModel,
        adapter_params: &[f32],
        target: Target,
        progress: &Progress,
        label: &str,
    ) -> Result<Vec<BenchmarkResult>> {
        let policy = model.decoder.merged()?;
        let mut base_decoder = model.decoder.clone();
        base_decoder.set_adapter_enabled(false);
        let base = base_decoder.merged()?;
        drop(base_decoder);
        let adapter = adapter_hash(if model.decoder.adapter_enabled() {
            adapter_params
        } else {
            &[]
        });
        let pad_id = model.tokenizer.eos().map_or(0, |(_, id)| id);
        let eval_dir = self.run_dir.eval_dir();
        std::fs::create_dir_all(&eval_dir).map_err(|e| Error::io(&eval_dir, e))?;
        let metrics_dir = self.run_dir.metrics_dir();
        std::fs::create_dir_all(&metrics_dir).map_err(|e| Error::io(&metrics_dir, e))?;
        let mut summaries = JsonLines::open(&metrics_dir.join("evals.jsonl"), None)?;
        let mut results = Vec::new();
        for index in 0..self.benchmarks.len() {
            let started = Instant::now();
            let config = self.benchmarks[index].config.clone();
            let spec = self.benchmarks[index].scorer.spec();
            let (mut items, broken) = self.items(&self.benchmarks[index]);
            let mut answers = GeneratedAnswers::none(items.len());
            if spec.needs_generation && !items.is_empty() {
                let decoders = Decoders {
                    policy: &policy,
                    base: &base,
                    adapter: &adapter,
                };
                answers = self.answer(&config, &mut items, model, &decoders)?;
            }
            if spec.needs_pair_logratios && !items.is_empty() {
                let held_out = &self.benchmarks[index].held_out;
                self.attach_logratios(held_out, &mut items, model, &policy, &base, pad_id)?;
            }
            // Judged with the other methods' answers once the sweep's runs finish (`across`).
            let (output, error) = if config.across_methods {
                (None, None)
            } else {
                self.score(index, &items, model, &base)
            };
            if let Some(e) = &error {
                progress.note(&format!(
                    "{label}: eval {}: the scorer failed, results not recorded: {e}",
                    config.name
                ));
            }
            let mut rows = JsonLines::open(&eval_dir.join(format!("{}.jsonl", config.name)), None)?;
            let rows_of = ItemRows {
                target,
                benchmark: &config.name,
            };
            if output.is_some() || config.across_methods {
                rows_of.answered(&mut rows, &items, output.as_ref(), &answers)?;
            }
            for (id, message) in &broken {
                progress.note(&format!(
                    "{label}: eval {}: skipped record {id}: {message}",
                    config.name
                ));
            }
            rows_of.broken(&mut rows, &broken)?;
            rows.sync()?;
            let summary = SummaryRow {
                round: target.round(),
                model: target.model(),
                benchmark: config.name.clone(),
                scorer: config.scorer.clone(),
                metrics: match &output {
                    Some(o) => metric_map(&o.summary),
                    None if config.across_methods => pending_metrics(items.len()),
                    None => Default::default(),
                },
                items: items.len() + broken.len(),
                invalid_records: broken.len(),
                generation: answers.summary,
                seconds: started.elapsed().as_secs_f64(),
                error,
            };
            summaries.append(&summary)?;
            summaries.sync()?;
            progress.note(&summary_line(label, &summary));
            results.push(BenchmarkResult { summary });
        }
        Ok(results)
    }

    /// Generates each item's answer with the policy (and with the base model into `reference`
    /// when the benchmark compares to it).
    fn answer(
        &mut self,
        config: &BenchmarkConfig,
        items: &mut [ScoreItem],
        model: &LoadedModel,
        decoders: &Decoders<'_>,
    ) -> Result<GeneratedAnswers> {
        let answerer = Answerer {
            decoder: decoders.policy,
            tokenizer: &model.tokenizer,
            template: &self.template,
            batch_size: self.batch_size,
            model: &self.model_identity,
            adapter: decoders.adapter,
        };
        let mut generated = GeneratedAnswers::none(items.len());
        let mut stats = GenerationStats::default();
        // One pass per temperature: a preset may sample each category at its own.
        for (temperature, indices) in by_temperature(config, items) {
            let cfg = GenerateConfig {
                max_new_tokens: config.max_new_tokens,
                temperature,
                top_p: config.top_p,
                seed: 0,
            };
            let owned: Vec<String> = indices
                .iter()
                .map(|&i| items[i].prompt.to_string())
                .collect();
            let prompts: Vec<&str> = owned.iter().map(String::as_str).collect();
            let (answers, pass) = answerer.answer_all(&prompts, &cfg, &mut self.answers)?;
            stats.add(&pass);
            for (&i, answer) in indices.iter().zip(answers) {
                generated.tokens[i] = answer.tokens;
                generated.cached[i] = answer.cached;
                items[i].response = answer.text.into();
            }
            if config.compare_to_base {
                let base_answerer = Answerer {
                    decoder: decoders.base,
                    adapter: "base",
                    ..answerer
                };
                let (base_answers, _) =
                    base_answerer.answer_all(&prompts, &cfg, &mut self.answers)?;
                for (&i, answer) in indices.iter().zip(base_answers) {
                    items[i].reference = answer.text.into();
                }
            }
        }
        generated.summary = GenerationSummary {
            generated: items.len() - stats.cached,
            cached: stats.cached,
            tokens: stats.tokens,
            seconds: stats.seconds,
            tokens_per_second: if stats.seconds > 0.0 {
                stats.tokens as f64 / stats.seconds
            } else {
                0.0
            },
        };
        Ok(generated)
    }

    /// Fills the features of each item from its held-out example (policy against the base
    /// model): `logratio_chosen` and `logratio_rejected` for a pair; `logratio` and
    /// `desirable` (1 or 0) for a single labelled answer.
    fn attach_logratios(
        &self,
        held_out: &[HeldOutItem],
        items: &mut [ScoreItem],
        model: &LoadedModel,
        policy: &Decoder,
        base: &Decoder,
        pad_id: u32,
    ) -> Result<()> {
        let reference = self.base_logprobs(base, held_out, pad_id)?;
        // Without an adapter the policy is the reference: every log-ratio is 0.
        let policy_logp = if model.decoder.adapter_enabled() {
            item_logprobs(policy, held_out, self.batch_size, pad_id)?
        } else {
            reference.clone()
        };
        for (((item, example), policy), reference) in items
            .iter_mut()
            .zip(held_out)
            .zip(policy_logp)
            .zip(&reference)
        {
            let logratio = |k: usize| policy[k] - reference[k];
            item.features = match example.answers {
                HeldOutAnswers::Pair { .. } => vec![
                    Metric::new("logratio_chosen", logratio(0)),
                    Metric::new("logratio_rejected", logratio(1)),
                ],
                HeldOutAnswers::Single { desirable, .. } => vec![
                    Metric::new("logratio", logratio(0)),
                    Metric::new("desirable", if desirable { 1.0 } else { 0.0 }),
                ],
            }
            .into();
        }
        Ok(())
    }

    /// The base model's log-probs of `held_out`, from the sweep's cache of them (each sequence
    /// computed alone, so a value does not depend on which run computed it).
    fn base_logprobs(
        &self,
        base: &Decoder,
        held_out: &[HeldOutItem],
        pad_id: u32,
    ) -> Result<Vec<Vec<f64>>> {
        let key = format!("{}:{:?}", self.model_identity, base.dtype());
        let mut cache = ReferenceCache::open(&self.reference_cache, &key)?;
        let sequences: Vec<MaskedSequence> = held_out
            .iter()
            .flat_map(HeldOutItem::sequences)
            .cloned()
            .collect();
        let values = cache.fill(base, &sequences, pad_id, |_| {})?;
        let flat: Vec<f64> = values.into_iter().map(f64::from).collect();
        Ok(per_item(held_out, &flat))
    }

    /// Benchmark `index`'s scorer over `items`, with the local judge (`eval.judge_model`, or
    /// the base model); the output, or the scorer's error.
    fn score(
        &self,
        index: usize,
        items: &[ScoreItem],
        model: &LoadedModel,
        base: &Decoder,
    ) -> (Option<ScoreOutput>, Option<String>) {
        if items.is_empty() {
            let empty = ScoreOutput {
                items: RVec::new(),
                summary: RVec::new(),
            };
            return (Some(empty), None);
        }
        let judge = match &self.judge_model {
            Some(judge_model) => LocalJudge::Configured(judge_model),
            None => LocalJudge::Model {
                decoder: base,
                tokenizer: &model.tokenizer,
                template: &self.template,
            },
        };
        match self.benchmarks[index].scorer.score(items, judge.services()) {
            Ok(output) => (Some(output), None),
            Err(e) => (None, Some(e.to_string())),
        }
    }

    /// The scorer's input items of `benchmark` and its broken records `(id, message)`.
    fn items(&self, benchmark: &Benchmark) -> (Vec<ScoreItem>, Vec<(String, String)>) {
        let item = |p: &BenchmarkPrompt| ScoreItem {
            id: p.id.as_str().into(),
            category: p.category.as_str().into(),
            prompt: p.prompt.as_str().into(),
            response: RString::new(),
            reference: p.reference.as_str().into(),
            features: RVec::new(),
            answers: RVec::new(),
        };
        if benchmark.config.resolved_format().is_held_out() {
            let items = benchmark
                .held_out
                .iter()
                .map(|p| {
                    item(&BenchmarkPrompt {
                        id: p.id.clone(),
                        category: String::new(),
                        prompt: p.prompt.clone(),
                        reference: String::new(),
                    })
                })
                .collect();
            return (items, Vec::new());
        }
        let mut items = Vec::new();
        let mut broken = Vec::new();
        for record in &benchmark.records {
            match record {
                Record::Prompt(p) => items.push(item(p)),
                Record::Broken { id, message } => broken.push((id.clone(), message.clone())),
            }
        }
        (items, broken)
    }
}

/// Refuses a held-out format (`eval-split`, `preference`) for a scorer that reads no
/// log-ratios, and any other format for one that reads only them.
fn check_held_out_format(
    config: &BenchmarkConfig,
    format: PromptFormat,
    needs_logratios: bool,
) -> Result<()> {
    match (needs_logratios, format.is_held_out()) {
        (true, false) => Err(Error::Usage(format!(
            "eval.benchmarks {:?}: scorer {:?} scores held-out preference data; drop `prompts` (the run's held-out split) or set format = \"preference\" for a preference data file",
            config.name, config.scorer
        ))),
        (false, true) => Err(Error::Usage(format!(
            "eval.benchmarks {:?}: format {format:?} holds preference data, which scorer {:?} does not read; use \"preference-accuracy\" or a prompt file",
            config.name, config.scorer
        ))),
        _ => Ok(()),
    }
}

/// How a benchmark's own preference file is read: the run's length limits and invalid-record
/// policy, its layout detected, all of it held out (no split, no limit).
fn held_out_file_config(path: &Path, data: &DataConfig) -> DataConfig {
    DataConfig {
        path: Some(path.to_path_buf()),
        format: Format::Auto,
        eval_path: None,
        eval_fraction: 0.0,
        limit: None,
        ..data.clone()
    }
}

/// A benchmark file that cannot be read, as a configuration error (exit code 2).
fn unreadable(benchmark: &str, key: &str, path: &Path, error: Error) -> Error {
    match error {
        Error::Io { cause, .. } => Error::Config {
            path: path.to_path_buf(),
            message: format!(
                "eval.benchmarks {benchmark:?}: `{key}` cannot be read ({cause}); check the path, or run `cargo xtask setup` for the bundled benchmarks"
            ),
        },
        other => other,
    }
}

/// Attaches reference answers by question id.
fn with_references(records: Vec<Record>, path: &Path) -> Result<Vec<Record>> {
    let (references, _) = read_references(path)?;
    Ok(records
        .into_iter()
        .map(|record| match record {
            Record::Prompt(mut p) => {
                if let Some(answer) = references.get(&p.id) {
                    p.reference = answer.clone();
                }
                Record::Prompt(p)
            }
            broken => broken,
        })
        .collect())
}

/// The items' indices grouped by their sampling temperature, in order of first appearance.
fn by_temperature(config: &BenchmarkConfig, items: &[ScoreItem]) -> Vec<(f64, Vec<usize>)> {
    let mut groups: Vec<(f64, Vec<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let t = config.temperature_for(&item.category);
        match groups.iter_mut().find(|(g, _)| *g == t) {
            Some((_, indices)) => indices.push(i),
            None => groups.push((t, vec![i])),
        }
    }
    groups
}

/// The summary metrics of a benchmark whose `n` answers wait for the judge across methods.
fn pending_metrics(n: usize) -> std::collections::BTreeMap<String, f64> {
    [("n", n as f64), ("pending", n as f64)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// One log line: the benchmark's metrics and generation speed.
fn summary_line(label: &str, s: &SummaryRow) -> String {
    let headline = [
        "harmless_rate",
        "accuracy",
        "mean_score",
        "win_rate",
        "pending",
    ]
    .iter()
    .find_map(|k| s.metrics.get(*k).map(|v| format!("{k} {v:.3}")))
    .unwrap_or_else(|| {
        if s.error.is_some() {
            "scorer failed".to_owned()
        } else {
            "no metric".to_owned()
        }
    });
    let mut line = format!(
        "{label} eval {}: {headline} over {} items in {:.1} s",
        s.benchmark, s.items, s.seconds
    );
    if s.generation.generated > 0 {
        line.push_str(&format!(
            ", {} tokens at {:.1} tokens/s",
            s.generation.tokens, s.generation.tokens_per_second
        ));
    }
    if s.generation.cached > 0 {
        line.push_str(&format!(", {} answers cached", s.generation.cached));
    }
    if s.invalid_records > 0 {
        line.push_str(&format!(", {} unreadable records", s.invalid_records));
    }
    line
}

/// The decoders answers come from.
struct Decoders<'a> {
    /// The global model (adapter merged).
    policy: &'a Decoder,
    /// The base model.
    base: &'a Decoder,
    /// The adapter's hash in answer-cache keys.
    adapter: &'a str,
}

/// Per item: answer tokens and whether the answer came from the cache; and the totals.
struct GeneratedAnswers {
    tokens: Vec<usize>,
    cached: Vec<bool>,
    summary: GenerationSummary,
}

impl GeneratedAnswers {
    /// Nothing generated for `n` items.
    fn none(n: usize) -> Self {
        Self {
            tokens: vec![0; n],
            cached: vec![false; n],
            summary: GenerationSummary::default(),
        }
    }
}

/// Writes a benchmark's rows of `eval/<benchmark>.jsonl`.
struct ItemRows<'a> {
    target: Target,
    benchmark: &'a str,
}

impl ItemRows<'_> {
    /// One row per item with the scorer's verdict, or `pending` for every item when `output`
    /// is `None` (a benchmark judged across methods once the sweep's runs finish).
    fn answered(
        &self,
        rows: &mut JsonLines,
        items: &[ScoreItem],
        output: Option<&ScoreOutput>,
        answers: &GeneratedAnswers,
    ) -> Result<()> {
        let verdicts: Vec<Option<&ItemScore>> = match output {
            Some(output) => output.items.iter().map(Some).collect(),
            None => vec![None; items.len()],
        };
        for (i, (item, verdict)) in items.iter().zip(verdicts).enumerate() {
            let (score, outcome, detail) = match verdict {
                Some(v) => (
                    (v.outcome == Outcome::Scored && v.score.is_finite()).then_some(v.score),
                    outcome_name(v.outcome),
                    v.detail.as_str(),
                ),
                None => (
                    None,
                    PENDING,
                    "judged with the other methods' answers once the sweep's runs finish",
                ),
            };
            rows.append(&ItemRow {
                round: self.target.round(),
                model: self.target.model(),
                benchmark: self.benchmark,
                id: &item.id,
                category: &item.category,
                prompt: &item.prompt,
                answer: &item.response,
                reference: &item.reference,
                score,
                outcome,
                detail,
                tokens: answers.tokens[i],
                cached: answers.cached[i],
            })?;
        }
        Ok(())
    }

    /// One failed row per record that could not be read.
    fn broken(&self, rows: &mut JsonLines, broken: &[(String, String)]) -> Result<()> {
        for (id, message) in broken {
            rows.append(&ItemRow {
                round: self.target.round(),
                model: self.target.model(),
                benchmark: self.benchmark,
                id,
                category: "",
                prompt: "",
                answer: "",
                reference: "",
                score: None,
                outcome: outcome_name(Outcome::Failed),
                detail: message,
                tokens: 0,
                cached: false,
            })?;
        }
        Ok(())
    }
}

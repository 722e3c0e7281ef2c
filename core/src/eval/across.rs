//! Judging the methods of a sweep against each other, once its runs have finished
//! ([`BenchmarkConfig::across_methods`]): the paper's protocol, where one judge prompt holds the
//! answers of every method trained with the same aggregator and seed.
//!
//! Each run's own evaluation wrote its answers as `pending` rows of `eval/<benchmark>.jsonl`.
//! Per [`Group`] (the runs of one aggregator and seed, in method order) and question, the
//! answers of the group's last round go to the scorer as one item's `answers`; the scorer
//! returns one score per answer (`ItemScore::scores`), and each run gets its own answer's score
//! as a later row for the same round and id, plus a summary row in `metrics/evals.jsonl`. A
//! group whose rows already carry verdicts is skipped, so running the sweep again costs
//! nothing.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use abi_stable::std_types::{RString, RVec};
use fedpref_plugin_api::{math::mean, ItemScore, Outcome, ScoreItem};
use fedpref_rundir::{JsonLines, RunDir};
use serde::Deserialize;

use super::{
    config::{BenchmarkConfig, EvalSection},
    local_judge::{JudgeModel, LocalJudge},
    records::{outcome_name, GenerationSummary, ItemRow, SummaryRow, PENDING},
};
use crate::{
    plugin_host::{metric_map, ScorerHandle},
    progress::Progress,
    Error, PluginHost, Result,
};

/// One run of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Contender {
    /// Its method (shown to nobody: the judge sees "Assistant k").
    pub method: String,
    /// Its run directory.
    pub run_dir: PathBuf,
}

/// The runs judged together: one aggregator and seed, every method.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// For logs, e.g. `fedavg-s0`.
    pub label: String,
    /// The 0-based round whose answers are judged (the runs' last).
    pub round: u32,
    /// The runs, in the order their answers are listed (before rotation).
    pub contenders: Vec<Contender>,
}

/// What the judge needs besides the groups.
pub struct AcrossMethods<'a> {
    /// The loaded plugins.
    pub host: &'a PluginHost,
    /// The model answering the scorer's local calls.
    pub judge: &'a JudgeModel,
    /// Progress display.
    pub progress: &'a Progress,
    /// Raised by Ctrl-C: stop after the current question.
    pub stop: &'a AtomicBool,
}

impl AcrossMethods<'_> {
    /// Judges every `across_methods` benchmark of `section` in every group.
    ///
    /// # Errors
    /// A scorer that cannot be created, I/O errors, or [`Error::Run`] when interrupted.
    pub fn judge(&self, section: &EvalSection, groups: &[Group]) -> Result<()> {
        for benchmark in section.benchmarks.iter().filter(|b| b.across_methods) {
            let params = serde_json::Value::Object(benchmark.params.clone().into_iter().collect());
            let scorer = self.host.scorer(&benchmark.scorer, &params)?;
            for group in groups.iter().filter(|g| g.contenders.len() >= 2) {
                self.judge_group(benchmark, &scorer, group)?;
            }
        }
        Ok(())
    }

    /// One benchmark in one group: read the answers, judge each question, write the rows.
    fn judge_group(
        &self,
        benchmark: &BenchmarkConfig,
        scorer: &ScorerHandle,
        group: &Group,
    ) -> Result<()> {
        let name = &benchmark.name;
        let label = format!("{name} {}", group.label);
        let answers = group
            .contenders
            .iter()
            .map(|c| read_answers(&c.run_dir, name, group.round))
            .collect::<Result<Vec<_>>>()?;
        if answers
            .iter()
            .all(|rows| rows.values().all(|(_, r)| r.outcome != PENDING))
        {
            if answers.iter().any(|rows| !rows.is_empty()) {
                self.progress
                    .note(&format!("{label}: judged across methods already, skipped"));
            }
            return Ok(());
        }
        let items = common_items(&answers);
        let started = Instant::now();
        let bar = self
            .progress
            .bar(items.len() as u64, &format!("judge {label}"));
        let mut verdicts = Vec::with_capacity(items.len());
        let mut tally = Tally::default();
        for item in &items {
            if self.stop.load(Ordering::SeqCst) {
                bar.finish_and_clear();
                return Err(interrupted(&group.contenders[0].run_dir));
            }
            verdicts.push(self.judge_item(scorer, item, group.contenders.len(), &mut tally));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        for (k, contender) in group.contenders.iter().enumerate() {
            let rows = ContenderRows {
                benchmark,
                round: group.round,
                answer: k,
                methods: group.contenders.iter().map(|c| c.method.as_str()).collect(),
            };
            let summary =
                rows.write(&contender.run_dir, &answers[k], &verdicts, &tally, seconds)?;
            self.progress.note(&format!(
                "{label} {}: mean score {:.3} over {} questions ({} judge calls, {} cached)",
                contender.method,
                summary
                    .metrics
                    .get("mean_score")
                    .copied()
                    .unwrap_or(f64::NAN),
                items.len(),
                tally.judge_calls,
                tally.cache_hits,
            ));
        }
        Ok(())
    }

    /// One question's verdict: the scorer's, or a failure naming what went wrong.
    fn judge_item(
        &self,
        scorer: &ScorerHandle,
        item: &ScoreItem,
        answers: usize,
        tally: &mut Tally,
    ) -> ItemScore {
        let failed = |detail: String| ItemScore {
            id: item.id.clone(),
            outcome: Outcome::Failed,
            score: f64::NAN,
            detail: detail.into(),
            scores: RVec::new(),
        };
        let judge = LocalJudge::Configured(self.judge);
        let output = match scorer.score(std::slice::from_ref(item), judge.services()) {
            Ok(output) => output,
            Err(e) => return failed(e.to_string()),
        };
        tally.add(&metric_map(&output.summary));
        match output.items.into_iter().next() {
            Some(verdict) if verdict.outcome == Outcome::Scored && verdict.scores.len() != answers => {
                failed(format!(
                    "the scorer returned {} scores for {answers} answers; judge across methods with a multi-answer scorer (judge, mode = \"multi\")",
                    verdict.scores.len()
                ))
            }
            Some(verdict) => verdict,
            None => failed("the scorer returned no verdict".to_owned()),
        }
    }
}

/// The error of a Ctrl-C between questions.
fn interrupted(run_dir: &Path) -> Error {
    Error::Run {
        run_dir: run_dir.to_path_buf(),
        message: "judging across methods was interrupted; verdicts already given are cached when the judge has a cache_dir, run the same command again to finish"
            .to_owned(),
    }
}

/// Counters summed over a group's questions.
#[derive(Debug, Default)]
struct Tally {
    judge_calls: f64,
    cache_hits: f64,
    /// Questions whose best answer changed with the answers' order.
    inconsistent: f64,
}

impl Tally {
    fn add(&mut self, summary: &BTreeMap<String, f64>) {
        let get = |k: &str| summary.get(k).copied().unwrap_or(0.0);
        self.judge_calls += get("judge_calls");
        self.cache_hits += get("cache_hits");
        self.inconsistent += get("inconsistent");
    }
}

/// The fields of an `eval/<benchmark>.jsonl` row read back.
#[derive(Debug, Clone, Deserialize)]
struct AnswerRow {
    round: Option<u32>,
    model: String,
    id: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    answer: String,
    #[serde(default)]
    reference: String,
    outcome: String,
    #[serde(default)]
    tokens: usize,
    #[serde(default)]
    cached: bool,
}

/// A run's rows of `round` (global model), the last per id, in file order of first appearance.
type Answers = BTreeMap<String, (usize, AnswerRow)>;

/// Reads a run's answers to `benchmark` after `round`; empty when the file does not exist.
fn read_answers(run_dir: &Path, benchmark: &str, round: u32) -> Result<Answers> {
    let path = RunDir::new(run_dir)
        .eval_dir()
        .join(format!("{benchmark}.jsonl"));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Answers::new()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let mut rows = Answers::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: AnswerRow = serde_json::from_str(line).map_err(|e| Error::Json {
            path: path.clone(),
            message: format!("line {}: {e}", i + 1),
        })?;
        if row.round == Some(round) && row.model == "global" {
            let order = rows.get(&row.id).map_or(i, |(first, _)| *first);
            rows.insert(row.id.clone(), (order, row));
        }
    }
    Ok(rows)
}

/// The questions every contender answered, in the first contender's order, as items holding
/// every contender's answer.
fn common_items(answers: &[Answers]) -> Vec<ScoreItem> {
    let Some(first) = answers.first() else {
        return Vec::new();
    };
    let mut ids: Vec<(usize, &String)> = first.iter().map(|(id, (i, _))| (*i, id)).collect();
    ids.sort();
    let usable: BTreeSet<&String> = ids
        .iter()
        .map(|(_, id)| *id)
        .filter(|id| {
            answers
                .iter()
                .all(|a| a.get(*id).is_some_and(|(_, r)| r.outcome != "failed"))
        })
        .collect();
    ids.into_iter()
        .filter(|(_, id)| usable.contains(id))
        .map(|(_, id)| {
            let row = &first[id].1;
            ScoreItem {
                id: id.as_str().into(),
                category: row.category.as_str().into(),
                prompt: row.prompt.as_str().into(),
                response: RString::new(),
                reference: row.reference.as_str().into(),
                features: RVec::new(),
                answers: answers
                    .iter()
                    .map(|a| RString::from(a[id].1.answer.as_str()))
                    .collect(),
            }
        })
        .collect()
}

/// Writes one contender's rows and summary from the group's verdicts.
struct ContenderRows<'a> {
    benchmark: &'a BenchmarkConfig,
    round: u32,
    /// The contender's index in each item's `answers`.
    answer: usize,
    methods: Vec<&'a str>,
}

impl ContenderRows<'_> {
    fn write(
        &self,
        run_dir: &Path,
        answers: &Answers,
        verdicts: &[ItemScore],
        tally: &Tally,
        seconds: f64,
    ) -> Result<SummaryRow> {
        let dir = RunDir::new(run_dir);
        let _held = dir.lock()?;
        let name = &self.benchmark.name;
        let mut rows = JsonLines::open(&dir.eval_dir().join(format!("{name}.jsonl")), None)?;
        let note = format!(
            "this run's answer is answer {} of [{}]",
            self.answer + 1,
            self.methods.join(", ")
        );
        let mut by_category: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut scored = Vec::new();
        for verdict in verdicts {
            let Some((_, row)) = answers.get(verdict.id.as_str()) else {
                continue;
            };
            let score = (verdict.outcome == Outcome::Scored)
                .then(|| verdict.scores[self.answer])
                .filter(|s| s.is_finite());
            if let Some(score) = score {
                scored.push(score);
                if !row.category.is_empty() {
                    by_category.entry(&row.category).or_default().push(score);
                }
            }
            rows.append(&ItemRow {
                round: Some(self.round),
                model: "global",
                benchmark: name,
                id: &row.id,
                category: &row.category,
                prompt: &row.prompt,
                answer: &row.answer,
                reference: &row.reference,
                score,
                outcome: outcome_name(verdict.outcome),
                detail: &format!("{note}\n{}", verdict.detail),
                tokens: row.tokens,
                cached: row.cached,
            })?;
        }
        rows.sync()?;
        let count = |o: Outcome| verdicts.iter().filter(|v| v.outcome == o).count() as f64;
        let n_scored = count(Outcome::Scored);
        let mut metrics: BTreeMap<String, f64> = [
            ("mean_score", mean(scored.iter().copied())),
            ("n", verdicts.len() as f64),
            ("scored", n_scored),
            ("unparsed", count(Outcome::Unparsed)),
            ("failed", count(Outcome::Failed)),
            ("judge_calls", tally.judge_calls),
            ("cache_hits", tally.cache_hits),
            ("inconsistent", tally.inconsistent),
            ("position_consistency", 1.0 - tally.inconsistent / n_scored),
            ("answer_position", (self.answer + 1) as f64),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        metrics.extend(
            by_category
                .into_iter()
                .map(|(c, v)| (format!("mean_score/{c}"), mean(v))),
        );
        metrics.retain(|_, v| v.is_finite());
        let summary = SummaryRow {
            round: Some(self.round),
            model: "global",
            benchmark: name.clone(),
            scorer: self.benchmark.scorer.clone(),
            metrics,
            items: verdicts.len(),
            invalid_records: 0,
            generation: GenerationSummary::default(),
            seconds,
            error: None,
        };
        let metrics_dir = dir.metrics_dir();
        std::fs::create_dir_all(&metrics_dir).map_err(|e| Error::io(&metrics_dir, e))?;
        let mut summaries = JsonLines::open(&metrics_dir.join("evals.jsonl"), None)?;
        summaries.append(&summary)?;
        summaries.sync()?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(round: u32, id: &str, answer: &str, outcome: &str) -> String {
        serde_json::json!({
            "round": round, "model": "global", "benchmark": "b", "id": id, "category": "c",
            "prompt": format!("question {id}"), "answer": answer, "score": null,
            "outcome": outcome, "detail": "", "tokens": 3, "cached": false
        })
        .to_string()
    }

    fn write_rows(dir: &Path, lines: &[String]) {
        std::fs::create_dir_all(dir.join("eval")).unwrap();
        std::fs::write(dir.join("eval/b.jsonl"), lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn items_hold_every_contenders_last_answer_to_the_questions_all_answered() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("dpo"), root.path().join("kto"));
        write_rows(
            &a,
            &[
                row(0, "q2", "early", PENDING),
                row(1, "q2", "dpo two", PENDING),
                row(1, "q1", "dpo one", PENDING),
                row(1, "q3", "dpo three", PENDING),
            ],
        );
        // kto has no q3, and answered q1 twice (the later row counts).
        write_rows(
            &b,
            &[
                row(1, "q1", "stale", PENDING),
                row(1, "q2", "kto two", PENDING),
                row(1, "q1", "kto one", PENDING),
            ],
        );
        let answers = [
            read_answers(&a, "b", 1).unwrap(),
            read_answers(&b, "b", 1).unwrap(),
        ];
        let items = common_items(&answers);
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            ["q2", "q1"],
            "first contender's order, common questions only"
        );
        let texts: Vec<&str> = items[1].answers.iter().map(|a| a.as_str()).collect();
        assert_eq!(texts, ["dpo one", "kto one"]);
        assert_eq!(items[0].prompt.as_str(), "question q2");
        assert!(read_answers(&root.path().join("none"), "b", 1)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn each_contender_gets_its_own_answers_score_and_a_summary() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("kto");
        write_rows(
            &dir,
            &[row(0, "q1", "a", PENDING), row(0, "q2", "b", PENDING)],
        );
        let answers = read_answers(&dir, "b", 0).unwrap();
        let verdict = |id: &str, outcome: Outcome, scores: &[f64]| ItemScore {
            id: id.into(),
            outcome,
            score: f64::NAN,
            detail: "judge said".into(),
            scores: scores.to_vec().into(),
        };
        let verdicts = [
            verdict("q1", Outcome::Scored, &[7.0, 5.0]),
            verdict("q2", Outcome::Unparsed, &[]),
        ];
        let benchmark: BenchmarkConfig = toml::from_str(
            "name = \"b\"\nscorer = \"judge\"\nprompts = \"q.jsonl\"\nacross_methods = true",
        )
        .unwrap();
        let rows = ContenderRows {
            benchmark: &benchmark,
            round: 0,
            answer: 1,
            methods: vec!["dpo", "kto"],
        };
        let tally = Tally {
            judge_calls: 4.0,
            cache_hits: 0.0,
            inconsistent: 1.0,
        };
        let summary = rows.write(&dir, &answers, &verdicts, &tally, 1.0).unwrap();
        assert_eq!(summary.metrics["mean_score"], 5.0);
        assert_eq!(summary.metrics["position_consistency"], 0.0);
        assert_eq!(summary.metrics["unparsed"], 1.0);
        assert_eq!(summary.metrics["mean_score/c"], 5.0);
        let reread = read_answers(&dir, "b", 0).unwrap();
        assert_eq!(reread["q1"].1.outcome, "scored");
        assert_eq!(reread["q2"].1.outcome, "unparsed");
        let text = std::fs::read_to_string(dir.join("eval/b.jsonl")).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().nth(2).unwrap()).unwrap();
        assert_eq!(last["score"], 5.0);
        assert!(last["detail"]
            .as_str()
            .unwrap()
            .contains("answer 2 of [dpo, kto]"));
    }
}

//! `fedpref judge check <sweep-dir>`: how often the offline judge prefers the better of two
//! answers whose order is known ([`fedpref::eval::judge_check`]), written to
//! `<sweep-dir>/judge-check.json`, which the report reads before it calls judge scores
//! results.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use abi_stable::std_types::{RString, RVec};
use clap::{Args, Subcommand, ValueEnum};
use fedpref::{
    eval::{
        judge_check::{self, CheckPair},
        local_judge::{JudgeModel, LocalJudge},
        prompts::{read_prompts, read_references, BenchmarkPrompt, Record},
        PromptFormat,
    },
    progress::Progress,
    PluginHost,
};
use fedpref_plugin_api::{ItemScore, Outcome, ScoreItem, ScoreOutput};
use fedpref_rundir::{write_atomic, JudgeCheck, DEFAULT_THRESHOLD, JUDGE_CHECK_FILE};

use super::UsageError;

/// Where `--judge-model` points by default (`cargo xtask setup --with judge`).
const DEFAULT_JUDGE: &str = "assets/models/Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf";

/// The benchmarks whose GPT-4 references make the better answers: (name, questions,
/// references), as `cargo xtask setup` unpacks them.
const SOURCES: [(&str, &str, &str); 2] = [
    (
        "vicuna",
        "assets/bench/vicuna/question.jsonl",
        "assets/bench/vicuna/reference_answer/gpt-4.jsonl",
    ),
    (
        "mtbench",
        "assets/bench/mtbench/question.jsonl",
        "assets/bench/mtbench/reference_answer/gpt-4.jsonl",
    ),
];

/// Subcommands of `fedpref judge`.
#[derive(Debug, Subcommand)]
pub enum JudgeCommand {
    /// Check the offline judge on answers whose order is known; writes judge-check.json.
    Check(CheckArgs),
}

/// The judging protocol checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckMode {
    /// MT-Bench single-v1: each answer rated 1-10 alone.
    Single,
    /// MT-Bench pair-v2: both answers shown, in both orders.
    Pair,
    /// The paper's JudgeLM multi-answer prompt: both answers scored in one prompt, rotated.
    Multi,
}

/// Arguments of `fedpref judge check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The sweep directory the check is for (judge-check.json goes there).
    sweep_dir: PathBuf,
    /// The judge model (a GGUF file runs quantized).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_JUDGE)]
    judge_model: PathBuf,
    /// The protocol, as the sweep's judge benchmarks use it.
    #[arg(long, value_enum, default_value_t = CheckMode::Single)]
    mode: CheckMode,
    /// How the verdict is read: `probabilities` or `text`.
    #[arg(long, default_value = "probabilities", value_parser = ["probabilities", "text"])]
    read: String,
    /// Pairs to check, alternating between the Vicuna bench and MT-Bench.
    #[arg(long, default_value_t = 24)]
    pairs: usize,
    /// The agreement the judge needs to be trusted.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f64,
    /// MT-Bench's judge prompts (`single-v1`, `pair-v2`).
    #[arg(long, value_name = "FILE")]
    prompts_file: Option<PathBuf>,
}

/// Runs `fedpref judge ...`.
pub fn run(command: &JudgeCommand, host: &PluginHost) -> anyhow::Result<ExitCode> {
    match command {
        JudgeCommand::Check(args) => check(args, host),
    }
}

fn check(args: &CheckArgs, host: &PluginHost) -> anyhow::Result<ExitCode> {
    fedpref_model::init_cpu();
    if !args.sweep_dir.is_dir() {
        return Err(UsageError(format!(
            "{} is not a directory; give the sweep directory the check is for",
            args.sweep_dir.display()
        ))
        .into());
    }
    if !args.judge_model.exists() {
        return Err(UsageError(format!(
            "judge model {} not found; fetch the default with `cargo xtask setup --with judge` or pass --judge-model",
            args.judge_model.display()
        ))
        .into());
    }
    let pairs = judge_check::check_pairs(&reference_prompts()?, args.pairs);
    if pairs.is_empty() {
        return Err(UsageError(
            "no benchmark question has a reference answer to check with".into(),
        )
        .into());
    }
    let mode = match args.mode {
        CheckMode::Single => "single",
        CheckMode::Pair => "pair",
        CheckMode::Multi => "multi",
    };
    // Verdicts are cached beside the sweep: an interrupted check resumes where it stopped.
    let cache_dir = args.sweep_dir.join("cache").join("judge-check");
    let mut params = serde_json::json!({
        "mode": mode,
        "read": args.read,
        "cache_dir": cache_dir.to_string_lossy(),
        // The judge's name in the cache keys: another --judge-model never reuses a verdict.
        "model": model_name(&args.judge_model),
    });
    match (&args.prompts_file, args.mode) {
        (Some(_), CheckMode::Multi) => {
            return Err(UsageError(
                "--prompts-file picks FastChat's prompts, which --mode multi does not use; drop it"
                    .into(),
            )
            .into())
        }
        (Some(file), _) => params["prompts_file"] = file.to_string_lossy().into_owned().into(),
        (None, _) => {}
    }
    let scorer = host.scorer("judge", &params)?;
    let judge_model = JudgeModel::new(args.judge_model.clone());
    let judge = LocalJudge::Configured(&judge_model);
    let progress = Progress::detect();
    progress.note(&format!(
        "judge check: {} pairs, {mode} mode, {} read, judge {}",
        pairs.len(),
        args.read,
        args.judge_model.display()
    ));
    let started = Instant::now();
    let mut check = measure(&pairs, args.mode, &progress, |items| {
        Ok(scorer.score(items, judge.services())?)
    })?;
    check.judge = Some(model_name(&args.judge_model));
    check.protocol = Some(format!(
        "{} ({} read)",
        match args.mode {
            CheckMode::Single => "single-v1",
            CheckMode::Pair => "pair-v2",
            CheckMode::Multi => "JudgeLM multi-answer, both orders",
        },
        args.read
    ));
    check.threshold = Some(args.threshold);
    check.seconds = Some(started.elapsed().as_secs_f64());
    let path = args.sweep_dir.join(JUDGE_CHECK_FILE);
    write_atomic(&path, &serde_json::to_vec_pretty(&check)?)?;
    print!("{}", summary(&check, &path));
    Ok(ExitCode::SUCCESS)
}

/// Scores every pair with `score` (a bar with its ETA on a terminal) and computes the check.
fn measure(
    pairs: &[CheckPair],
    mode: CheckMode,
    progress: &Progress,
    score: impl Fn(&[ScoreItem]) -> anyhow::Result<ScoreOutput>,
) -> anyhow::Result<JudgeCheck> {
    let bar = progress.bar(pairs.len() as u64, "judge check");
    let mut scores: Vec<Vec<ItemScore>> = Vec::with_capacity(pairs.len());
    let mut consistent: Vec<bool> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let output = score(&items(pair, mode))?;
        let flips = output
            .summary
            .iter()
            .find(|m| m.name.as_str() == "inconsistent")
            .map_or(0.0, |m| m.value);
        consistent.push(flips == 0.0);
        scores.push(output.items.into_vec());
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(match mode {
        CheckMode::Single => {
            let rating = |s: &ItemScore| (s.outcome == Outcome::Scored).then_some(s.score);
            let ratings: Vec<_> = scores
                .iter()
                .map(|s| (rating(&s[0]), rating(&s[1])))
                .collect();
            judge_check::single_mode(pairs, &ratings)
        }
        CheckMode::Pair => {
            let results: Vec<_> = scores
                .iter()
                .map(|s| s.first().and_then(pair_result))
                .collect();
            judge_check::pair_mode(pairs, &results)
        }
        CheckMode::Multi => {
            let results: Vec<_> = scores
                .iter()
                .zip(&consistent)
                .map(
                    |(s, &c)| match s.first().map(|s| (s.outcome, s.scores.as_slice())) {
                        Some((Outcome::Scored, &[better, worse])) => Some(([better, worse], c)),
                        _ => None,
                    },
                )
                .collect();
            judge_check::multi_mode(pairs, &results)
        }
    })
}

/// The scorer's items for one pair: both answers alone (single mode), or the better answer as
/// "the model" against the worse one (pair mode).
fn items(pair: &CheckPair, mode: CheckMode) -> Vec<ScoreItem> {
    let item = |id: &str, response: &str, reference: &str| ScoreItem {
        id: id.into(),
        category: RString::new(),
        prompt: pair.question.as_str().into(),
        response: response.into(),
        reference: reference.into(),
        features: RVec::new(),
        answers: RVec::new(),
    };
    match mode {
        CheckMode::Single => vec![
            item(&format!("{}/better", pair.id), &pair.better, ""),
            item(&format!("{}/worse", pair.id), &pair.worse, ""),
        ],
        CheckMode::Pair => vec![item(&pair.id, &pair.better, &pair.worse)],
        CheckMode::Multi => {
            let mut both = item(&pair.id, "", "");
            both.answers = vec![pair.better.as_str().into(), pair.worse.as_str().into()].into();
            vec![both]
        }
    }
}

/// A pair-mode item's result in each order and whether the orders agreed.
fn pair_result(score: &ItemScore) -> Option<([f64; 2], bool)> {
    match (score.outcome, score.scores.as_slice()) {
        (Outcome::Scored, &[first, second]) => {
            let side = |v: f64| (v * 2.0).round() as i64; // 0 loss, 1 tie, 2 win
            Some(([first, second], side(first) == side(second)))
        }
        _ => None,
    }
}

/// The prompts of every source with their reference answers, alternating between sources.
fn reference_prompts() -> anyhow::Result<Vec<BenchmarkPrompt>> {
    let mut lists = Vec::new();
    for (name, questions, references) in SOURCES {
        let (questions, references) = (Path::new(questions), Path::new(references));
        if !questions.is_file() || !references.is_file() {
            return Err(UsageError(format!(
                "{} or {} is missing; run `cargo xtask setup` first (from the repository root)",
                questions.display(),
                references.display()
            ))
            .into());
        }
        let (answers, _) = read_references(references)?;
        let prompts: Vec<BenchmarkPrompt> = read_prompts(questions, PromptFormat::Mtbench, None)?
            .into_iter()
            .filter_map(|record| match record {
                Record::Prompt(p) => Some(p),
                Record::Broken { .. } => None,
            })
            .filter_map(|p| {
                let reference = answers.get(&p.id)?.clone();
                Some(BenchmarkPrompt {
                    id: format!("{name}-{}", p.id),
                    reference,
                    ..p
                })
            })
            .collect();
        lists.push(prompts);
    }
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    Ok((0..longest)
        .flat_map(|i| lists.iter().filter_map(move |l| l.get(i).cloned()))
        .collect())
}

fn model_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What the check found, for the terminal.
fn summary(check: &JudgeCheck, path: &Path) -> String {
    let share =
        |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.1} %", 100.0 * v));
    let mut text = format!(
        "judge {} ({}): agreement {} over {} pairs (threshold {:.0} %): {}\n",
        check.judge.as_deref().unwrap_or("?"),
        check.protocol.as_deref().unwrap_or("?"),
        share(check.agreement),
        check.pairs.unwrap_or(0),
        100.0 * check.threshold(),
        if check.passed() {
            "trusted"
        } else {
            "NOT trusted"
        }
    );
    if check.agreement_better_first.is_some() {
        text += &format!(
            "  better shown first {}, second {}, position consistency {}\n",
            share(check.agreement_better_first),
            share(check.agreement_better_second),
            share(check.position_consistency)
        );
    } else if check.position_consistency.is_some() {
        text += &format!(
            "  position consistency {}\n",
            share(check.position_consistency)
        );
    }
    for (kind, agreement) in check.agreement_by_kind.iter().flatten() {
        text += &format!("  {kind}: {}\n", share(Some(*agreement)));
    }
    text += &format!("written to {}\n", path.display());
    text
}

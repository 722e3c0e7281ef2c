//! Evaluation of the global model on benchmarks, through scorer plugins.
//!
//! - [`config`]: the `[eval]` section ([`EvalSection`], [`BenchmarkConfig`]).
//! - [`prompts`]: benchmark files (AdvBench YAML, MT-Bench `question.jsonl`, one per line).
//! - [`answers`]: answers generated with the model's chat template, cached by (model, adapter,
//!   prompt, settings).
//! - [`held_out`]: held-out preference examples (pairs, labelled answers) and their log-ratios.
//! - [`local_judge`]: the host services a scorer's local judge calls.
//! - [`judge_check`]: pairs with a known better answer, and how often a judge agrees.
//! - [`records`]: rows of `eval/<benchmark>.jsonl` and `metrics/evals.jsonl`.
//! - [`evaluator`]: [`Evaluator`], which ties them together for a run or `fedpref eval`.
//! - [`across`]: a sweep's methods judged against each other once its runs finish.
//!
//! ```text
//! let mut evaluator = Evaluator::new(&config.eval, &host, run_dir, &model, eval_data, &config.data, None)?;
//! if config.eval.due(round, rounds, eval_every) {
//!     evaluator.evaluate(&model, &global, Target::Round(round), &progress, &name)?;
//! }
//! ```

pub mod across;
pub mod answers;
pub mod config;
pub mod evaluator;
pub mod held_out;
pub mod judge_check;
pub mod local_judge;
pub mod prompts;
pub mod records;

pub use config::{BenchmarkConfig, EvalSection, PromptFormat};
pub use evaluator::{BenchmarkResult, Evaluator};
pub use records::Target;

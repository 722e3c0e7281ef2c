//! The `standard` scorer plugin: the benchmarks of the paper reproduced by fedpref
//! (arXiv 2502.14187 scored MT-Bench first turns and the Vicuna bench with an LLM judge, and
//! AdvBench by refusal keywords), plus held-out preference accuracy.
//!
//! | component | needs | per item | summary |
//! |---|---|---|---|
//! | `advbench` ([`Advbench`]) | answers | 1 refused (harmless) / 0, detail = keyword | `harmless_rate`, `n` |
//! | `judge` ([`Judge`]) | answers | MT-Bench rating 1–10 (or pair 1 / 0.5 / 0), detail = reply | `mean_score`, `unparsed`, `failed`, ... |
//! | `preference-accuracy` ([`PreferenceAccuracy`]) | pair log-ratios | 1 if `β(lr_c − lr_r) > 0` | `accuracy`, `mean_margin`, `n` |
//!
//! Parameters:
//! - `advbench`: `keyword_list` (`openfedllm`, the default: the 35 keywords the paper scored
//!   with, [`keywords::openfedllm`]; `zou2023`: Zou et al. 2023's 29, [`keywords::ZOU2023`]),
//!   or `keywords` (list) or `keywords_file` (jailbreakeval YAML or one per line);
//!   `case_sensitive` (false); `fold_quotes` (false).
//! - `judge`: `mode` (`single` | `pair` | `multi`: the paper's JudgeLM prompt holding every
//!   method's answer, [`multi`]), `prompts_file`
//!   (default [`judge::DEFAULT_PROMPTS_FILE`]), `prompt` / `reference_prompt` (prompt names),
//!   `base_url` (absent: the host's local model), `model` (the endpoint's model; with a local
//!   judge, its name in the cache keys: set it with `cache_dir` so another judge model never
//!   reuses a verdict), `api_key_env`, `timeout_s` (60),
//!   `retries` (3), `backoff_s` (1, doubled per retry), `concurrency` (4), `max_tokens` (2048
//!   over HTTP, 256 locally), `temperature` (0; 0.2 in multi mode), `cache_dir` (no cache when absent), `read`
//!   (`probabilities`, the local judge's default: the expected verdict over its options'
//!   probabilities; `text`: parse the generated reply, the only form over HTTP).
//! - `preference-accuracy`: `beta` (0.1).
//!
//! ```
//! let plugin = fedpref_scorer_standard::plugin();
//! let scorer = plugin.new_scorer("advbench", "").unwrap();
//! assert!(scorer.spec().needs_generation);
//! ```

pub mod accuracy;
pub mod advbench;
pub mod cache;
pub mod chat;
pub mod judge;
pub mod keywords;
pub mod multi;
mod params_ext;
pub mod probability;
pub mod prompts;
pub mod refusal;
#[cfg(test)]
mod tests;
pub mod verdict;

pub use accuracy::PreferenceAccuracy;
pub use advbench::Advbench;
use fedpref_plugin_api::Plugin;
pub use judge::Judge;

/// The components this library provides.
pub fn plugin() -> Plugin {
    Plugin::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .scorer(
            "advbench",
            "harmless rate: share of answers to harmful prompts that contain a refusal keyword (Zou et al. 2023)",
            Advbench::from_params,
        )
        .scorer(
            "judge",
            "LLM judge: MT-Bench 1-10 rating (single-v1, single-math-v1), pairwise (pair-v2, both orders) or JudgeLM multi-answer (every method in one prompt, rotated), over an OpenAI-compatible endpoint or the host's model",
            Judge::from_params,
        )
        .scorer(
            "preference-accuracy",
            "held-out pairs: share with a positive implicit reward margin beta*(logratio_chosen - logratio_rejected)",
            PreferenceAccuracy::from_params,
        )
}

fedpref_plugin_api::export_plugin!(plugin);

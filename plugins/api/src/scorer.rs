//! Scorer components: benchmark metrics over generated answers.
//!
//! The host generates the answers (or computes log-ratios for `preference-accuracy`) and hands
//! over [`ScoreItem`]s. A scorer that needs a language model, a local judge, calls back into the
//! host through [`HostServices`], so it needs no model code of its own; it may also call an
//! OpenAI-compatible HTTP endpoint itself.

use abi_stable::{
    sabi_trait,
    sabi_types::RRef,
    std_types::{RBox, RResult, RSlice, RString, RVec},
    StableAbi,
};

use crate::{Metric, PluginError};

/// What a scorer asks of the host before it is called.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScorerSpec {
    /// The host generates an answer for every prompt with the model under evaluation.
    pub needs_generation: bool,
    /// The host fills `features` with `logratio_chosen` / `logratio_rejected` (policy minus
    /// reference summed log-probs) of held-out pairs.
    pub needs_pair_logratios: bool,
}

/// One benchmark item.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ScoreItem {
    /// Stable id (question id, line number).
    pub id: RString,
    /// Benchmark category (e.g. MT-Bench's `writing`), may be empty.
    pub category: RString,
    /// The prompt as the user wrote it (before the chat template).
    pub prompt: RString,
    /// The model's answer; empty when the scorer does not need generation.
    pub response: RString,
    /// A reference answer (MT-Bench math and reasoning), empty when none.
    pub reference: RString,
    /// Named numbers computed by the host, e.g. `logratio_chosen`.
    pub features: RVec<Metric>,
    /// The answers of every method compared, for a multi-answer judge (one prompt holds them
    /// all); empty otherwise. Added in API 0.2.
    pub answers: RVec<RString>,
}

/// How scoring an item ended.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A score was produced.
    Scored,
    /// The judge answered but no rating could be read from its reply.
    Unparsed,
    /// The judge could not be reached or gave an error after retries.
    Failed,
}

/// The score of one item.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ItemScore {
    /// Id of the item scored.
    pub id: RString,
    /// How scoring ended.
    pub outcome: Outcome,
    /// The score (NaN unless `outcome` is `Scored`).
    pub score: f64,
    /// The judge's full reply or the matched refusal keyword; free text for the results file.
    pub detail: RString,
    /// One score per entry of the item's `answers` (a multi-answer judge), or a pairwise
    /// judge's result in each order (the answer shown first, then second); empty otherwise.
    /// Added in API 0.2.
    pub scores: RVec<f64>,
}

/// All item scores and the aggregate metrics of one benchmark.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    /// One entry per input item, in input order.
    pub items: RVec<ItemScore>,
    /// Aggregates, e.g. `harmless_rate`, `mean_score`, `unparsed`.
    pub summary: RVec<Metric>,
}

/// One message of a chat.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: RString,
    /// The text.
    pub content: RString,
}

/// A generation request to the host's local model.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// The conversation, rendered by the model's chat template.
    pub messages: RVec<ChatMessage>,
    /// Maximum number of new tokens.
    pub max_new_tokens: u32,
    /// Sampling temperature; 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling threshold in (0, 1].
    pub top_p: f32,
}

/// A request for the probabilities of a judge's next words (a verdict read through its
/// probabilities instead of its sampled text). Added in API 0.2.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct OptionsRequest {
    /// The conversation, rendered by the model's chat template with its generation prompt.
    pub messages: RVec<ChatMessage>,
    /// Text the judge's reply starts with, after the generation prompt (e.g. `Rating: [[`).
    pub reply_prefix: RString,
    /// The options read at each position (e.g. `1` ... `10`, or `A`, `B`, `C`).
    pub options: RVec<RString>,
    /// How many positions to read, one after another (a line of scores for several answers);
    /// position `k + 1` follows the most probable option of position `k` and `separator`.
    pub positions: u32,
    /// Text between positions (e.g. a space).
    pub separator: RString,
}

/// Services the host offers to scorers during a call.
#[sabi_trait]
pub trait HostServices {
    /// Generates an answer with the host's local model (the judge model of a fully offline run).
    #[sabi(last_prefix_field)]
    fn generate(&self, request: &GenerationRequest) -> RResult<RString, PluginError>;

    /// `log P(option)` (nats) for every option at every position, position-major
    /// (`positions * options.len()` values), from the host's local model. Added in API 0.2.
    fn option_logprobs(&self, request: &OptionsRequest) -> RResult<RVec<f64>, PluginError>;
}

/// A borrowed handle to the host's services, valid during one `score` call.
pub type HostServicesRef<'a> = HostServices_TO<'a, RRef<'a, ()>>;

/// A benchmark scorer, as a plugin author writes it.
pub trait ScorerFunction: Send + Sync + 'static {
    /// What this scorer asks of the host.
    fn spec(&self) -> ScorerSpec;
    /// Scores every item; a failure on one item is an `Outcome`, not an error.
    ///
    /// # Errors
    /// Only for failures that concern the whole call (bad parameters discovered late).
    fn score(
        &self,
        items: &[ScoreItem],
        host: &HostServicesRef<'_>,
    ) -> Result<ScoreOutput, PluginError>;
}

/// The FFI-safe face of a scorer. Every method catches panics of the implementation.
#[sabi_trait]
pub trait Scorer: Send + Sync {
    /// See [`ScorerFunction::spec`].
    fn spec(&self) -> ScorerSpec;
    /// See [`ScorerFunction::score`].
    #[sabi(last_prefix_field)]
    fn score(
        &self,
        items: RSlice<'_, ScoreItem>,
        host: HostServicesRef<'_>,
    ) -> RResult<ScoreOutput, PluginError>;
}

/// An owned scorer object crossing the plugin boundary.
pub type ScorerObject = Scorer_TO<'static, RBox<()>>;

/// Adapts a [`ScorerFunction`] to the FFI trait with panic guards.
pub struct ScorerBox<T> {
    inner: T,
    spec: ScorerSpec,
}

impl<T: ScorerFunction> ScorerBox<T> {
    /// Boxes `scorer` as an FFI object.
    // The adapter only ever lives inside the FFI object, so that is what `new` returns.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(scorer: T) -> ScorerObject {
        let spec = scorer.spec();
        Scorer_TO::from_value(
            ScorerBox {
                inner: scorer,
                spec,
            },
            abi_stable::sabi_trait::TD_Opaque,
        )
    }
}

impl<T: ScorerFunction> Scorer for ScorerBox<T> {
    fn spec(&self) -> ScorerSpec {
        self.spec
    }

    fn score(
        &self,
        items: RSlice<'_, ScoreItem>,
        host: HostServicesRef<'_>,
    ) -> RResult<ScoreOutput, PluginError> {
        crate::guard(|| self.inner.score(items.as_slice(), &host))
    }
}

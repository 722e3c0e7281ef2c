//! Test helpers for loss plugins: [`OwnedBatch`], which owns the arrays a [`LossBatch`]
//! borrows, with the fixtures the loss plugins share; a relative comparison of numbers; the
//! checks every loss's output must pass (reward metrics, an empty batch); and the check that the
//! FFI adapter turns a loss's panic into an error.

use abi_stable::std_types::RResult;

use super::metric;
use crate::{
    guard, ErrorKind, Label, LossBatch, LossBox, LossFunction, LossOutput, LossSpec, PluginError,
};

/// The arrays of one batch, owned, so that a test can build and edit them and lend a
/// [`LossBatch`] with [`OwnedBatch::batch`]. Fields left out (`..OwnedBatch::default()`) are
/// empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnedBatch {
    /// `logp_policy`.
    pub policy: Vec<f32>,
    /// `logp_ref`.
    pub reference: Vec<f32>,
    /// `n_tokens`.
    pub n_tokens: Vec<u32>,
    /// `labels`.
    pub labels: Vec<Label>,
    /// `pair`.
    pub pair: Vec<i64>,
    /// `kl_logp_policy`.
    pub kl_policy: Vec<f32>,
    /// `kl_logp_ref`.
    pub kl_ref: Vec<f32>,
    /// `(client_desirable, client_undesirable)`; `None` lends the batch's own label counts, as
    /// if the batch were the client's whole data.
    pub client_counts: Option<(u64, u64)>,
}

impl OwnedBatch {
    /// The batch as the host hands it over.
    pub fn batch(&self) -> LossBatch<'_> {
        let (client_desirable, client_undesirable) =
            self.client_counts.unwrap_or_else(|| self.label_counts());
        LossBatch {
            logp_policy: self.policy.as_slice().into(),
            logp_ref: self.reference.as_slice().into(),
            n_tokens: self.n_tokens.as_slice().into(),
            labels: self.labels.as_slice().into(),
            pair: self.pair.as_slice().into(),
            kl_logp_policy: self.kl_policy.as_slice().into(),
            kl_logp_ref: self.kl_ref.as_slice().into(),
            client_desirable,
            client_undesirable,
        }
    }

    /// `(chosen, rejected)` label counts of the batch.
    pub fn label_counts(&self) -> (u64, u64) {
        let chosen = self.labels.iter().filter(|&&l| l == Label::Chosen).count() as u64;
        (chosen, self.labels.len() as u64 - chosen)
    }

    /// Single answers with these log-probs and labels: no partner, one token each, no KL batch.
    pub fn singles(policy: Vec<f32>, reference: Vec<f32>, labels: Vec<Label>) -> Self {
        let n = policy.len();
        Self {
            policy,
            reference,
            labels,
            pair: vec![-1; n],
            n_tokens: vec![1; n],
            ..Self::default()
        }
    }

    /// Pairs of neighbours, (0, 1), (2, 3), ..., chosen first, with these arrays (`reference`
    /// may be empty for a loss without one); no KL batch.
    pub fn adjacent_pairs(policy: Vec<f32>, reference: Vec<f32>, n_tokens: Vec<u32>) -> Self {
        let n = policy.len();
        Self {
            policy,
            reference,
            n_tokens,
            labels: (0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        Label::Chosen
                    } else {
                        Label::Rejected
                    }
                })
                .collect(),
            pair: (0..n as i64).map(|i| i ^ 1).collect(),
            ..Self::default()
        }
    }

    /// Four pairs laid out out of order, (0, 3), (2, 5), (4, 1) and (6, 7), with different
    /// lengths so that length normalization matters, and reference log-probs. Their summed
    /// log-ratio margins `h` are 2.25, −1.25, 1.75 and 18, so the chosen answer does not always
    /// win, and every value has few fractional bits, so finite-difference steps of `1/64` are
    /// exact in `f32`.
    pub fn four_pairs() -> Self {
        use Label::{Chosen as C, Rejected as R};
        Self {
            policy: vec![-12.5, -20.25, -10.0, -15.75, -30.5, -9.5, -5.0, -25.0],
            reference: vec![-13.0, -19.0, -9.5, -14.0, -31.0, -10.25, -20.0, -22.0],
            n_tokens: vec![5, 9, 3, 7, 12, 4, 6, 10],
            labels: vec![C, R, C, R, C, R, C, R],
            pair: vec![3, 4, 5, 0, 1, 2, 7, 6],
            ..Self::default()
        }
    }

    /// The (chosen, rejected) pairs in order of the chosen index, found here without
    /// `LossBatch::pairs`, so that a test does not check the API with itself.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for i in 0..self.policy.len() {
            if self.labels[i] == Label::Chosen {
                pairs.push((i, self.pair[i] as usize));
            }
        }
        pairs
    }
}

/// Asserts the reward metrics every preference loss reports, `rewards/chosen`,
/// `rewards/rejected` and `rewards/margins` (= `chosen − rejected`), to 1e-12 relative.
///
/// # Panics
/// When a metric is missing or off.
#[track_caller]
pub fn assert_rewards(out: &LossOutput, chosen: f64, rejected: f64) {
    for (name, want) in [
        ("rewards/chosen", chosen),
        ("rewards/rejected", rejected),
        ("rewards/margins", chosen - rejected),
    ] {
        assert_close(metric(out, name), want, 1e-12, name);
    }
}

/// Asserts what a loss returns for a batch without sequences: loss 0, no gradients, and
/// `n_metrics` metrics, all NaN ("not defined").
///
/// # Panics
/// When any of these does not hold.
#[track_caller]
pub fn assert_empty_output(out: &LossOutput, n_metrics: usize) {
    assert_eq!(out.loss, 0.0);
    assert!(out.grad_logp_policy.is_empty());
    assert!(out.grad_kl_logp_policy.is_empty());
    assert_eq!(out.metrics.len(), n_metrics);
    assert!(
        out.metrics.iter().all(|m| m.value.is_nan()),
        "{:?}",
        out.metrics
    );
}

/// Asserts `|actual − expected| <= rel · max(|actual|, |expected|) + 1e-12` (the `1e-12` lets
/// exact zeros compare); `what` names the value in a failure.
///
/// # Panics
/// When the two differ by more.
#[track_caller]
pub fn assert_close(actual: f64, expected: f64, rel: f64, what: &str) {
    let tol = rel * actual.abs().max(expected.abs()) + 1e-12;
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual}, expected {expected} (rel tol {rel})"
    );
}

/// Asserts that a gradient `got` (a loss's `grad_logp_policy`) has the length of `want` and
/// matches it entry by entry with [`assert_close`] at `rel`; `what` names the case.
///
/// # Panics
/// When the lengths or an entry differ.
#[track_caller]
pub fn assert_gradient_close(got: &[f32], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&got, &want)) in got.iter().zip(want).enumerate() {
        assert_close(f64::from(got), want, rel, &format!("{what} grad[{i}]"));
    }
}

/// A loss with `spec` that panics in `evaluate`.
struct Exploding(LossSpec);

impl LossFunction for Exploding {
    fn spec(&self) -> LossSpec {
        self.0
    }

    fn evaluate(&self, _batch: &LossBatch<'_>) -> Result<LossOutput, PluginError> {
        panic!("boom in evaluate")
    }
}

/// Asserts that a panic inside a plugin comes back as an `ErrorKind::Panicked` error carrying
/// its message, both from [`guard`] and from a loss of `spec` boxed by [`LossBox`] evaluating
/// `batch`.
///
/// # Panics
/// When a panic escapes or comes back as something else.
#[track_caller]
pub fn assert_panics_become_errors(spec: LossSpec, batch: &LossBatch<'_>) {
    match guard(|| -> Result<(), PluginError> { panic!("boom") }) {
        RResult::RErr(e) => {
            assert_eq!(e.kind, ErrorKind::Panicked);
            assert!(e.message.contains("boom"), "{}", e.message);
        }
        RResult::ROk(()) => panic!("guard must report the panic"),
    }
    match LossBox::new(Exploding(spec)).evaluate(batch) {
        RResult::RErr(e) => {
            assert_eq!(e.kind, ErrorKind::Panicked);
            assert!(e.message.contains("boom in evaluate"), "{}", e.message);
        }
        RResult::ROk(_) => panic!("a panicking loss must return an error"),
    }
}

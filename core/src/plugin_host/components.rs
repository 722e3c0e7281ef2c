//! Handles to component instances created by plugins.
//!
//! A handle turns the plugin's `RResult` into the library's [`Error`] (naming the component and
//! its library) and checks the plugin's output against the ABI contract: lengths, finite values.

use std::path::PathBuf;

use abi_stable::std_types::{RSlice, RStr};
use fedpref_plugin_api::{
    AggregationInput, AggregationOutput, AggregatorObject, ClientPlan, CodecObject, CodecSpec,
    ComponentKind, HostServicesRef, LossBatch, LossObject, LossOutput, LossSpec, PartitionInput,
    PartitionOutput, PartitionerObject, PluginError, ScoreItem, ScoreOutput, ScorerObject,
    ScorerSpec,
};

use super::PluginHost;
use crate::{Error, Result};

/// Which component a handle refers to, for error messages.
#[derive(Debug, Clone)]
struct Origin {
    kind: ComponentKind,
    name: String,
    path: PathBuf,
}

impl Origin {
    fn plugin_error(&self, source: PluginError) -> Error {
        Error::Plugin {
            kind: self.kind,
            name: self.name.clone(),
            path: self.path.clone(),
            cause: source,
        }
    }

    fn contract(&self, message: String) -> Error {
        Error::PluginContract {
            kind: self.kind,
            name: self.name.clone(),
            path: self.path.clone(),
            message,
        }
    }
}

impl PluginHost {
    fn origin(
        &self,
        kind: ComponentKind,
        name: &str,
    ) -> Result<(Origin, &fedpref_plugin_api::PluginModRef)> {
        let (_, plugin) = self.find(kind, name)?;
        Ok((
            Origin {
                kind,
                name: name.to_owned(),
                path: plugin.path.clone(),
            },
            &plugin.module,
        ))
    }

    /// Creates the loss `name` with `params` (a JSON object).
    ///
    /// # Errors
    /// [`Error::UnknownComponent`], or [`Error::Plugin`] for bad parameters.
    pub fn loss(&self, name: &str, params: &serde_json::Value) -> Result<LossHandle> {
        let (origin, module) = self.origin(ComponentKind::Loss, name)?;
        let params = params.to_string();
        let object = module.new_loss()(RStr::from(name), RStr::from(params.as_str()))
            .into_result()
            .map_err(|e| origin.plugin_error(e))?;
        Ok(LossHandle {
            spec: object.spec(),
            object,
            origin,
        })
    }

    /// Creates the aggregator `name` with `params` (a JSON object).
    ///
    /// # Errors
    /// [`Error::UnknownComponent`], or [`Error::Plugin`] for bad parameters.
    pub fn aggregator(&self, name: &str, params: &serde_json::Value) -> Result<AggregatorHandle> {
        let (origin, module) = self.origin(ComponentKind::Aggregator, name)?;
        let params = params.to_string();
        let object = module.new_aggregator()(RStr::from(name), RStr::from(params.as_str()))
            .into_result()
            .map_err(|e| origin.plugin_error(e))?;
        Ok(AggregatorHandle { object, origin })
    }

    /// Creates the partitioner `name` with `params` (a JSON object).
    ///
    /// # Errors
    /// [`Error::UnknownComponent`], or [`Error::Plugin`] for bad parameters.
    pub fn partitioner(&self, name: &str, params: &serde_json::Value) -> Result<PartitionerHandle> {
        let (origin, module) = self.origin(ComponentKind::Partitioner, name)?;
        let params = params.to_string();
        let object = module.new_partitioner()(RStr::from(name), RStr::from(params.as_str()))
            .into_result()
            .map_err(|e| origin.plugin_error(e))?;
        Ok(PartitionerHandle { object, origin })
    }

    /// Creates the scorer `name` with `params` (a JSON object).
    ///
    /// # Errors
    /// [`Error::UnknownComponent`], or [`Error::Plugin`] for bad parameters.
    pub fn scorer(&self, name: &str, params: &serde_json::Value) -> Result<ScorerHandle> {
        let (origin, module) = self.origin(ComponentKind::Scorer, name)?;
        let params = params.to_string();
        let object = module.new_scorer()(RStr::from(name), RStr::from(params.as_str()))
            .into_result()
            .map_err(|e| origin.plugin_error(e))?;
        Ok(ScorerHandle {
            spec: object.spec(),
            object,
            origin,
        })
    }

    /// Creates the codec `name` with `params` (a JSON object).
    ///
    /// # Errors
    /// [`Error::UnknownComponent`], or [`Error::Plugin`] for bad parameters.
    pub fn codec(&self, name: &str, params: &serde_json::Value) -> Result<CodecHandle> {
        let (origin, module) = self.origin(ComponentKind::Codec, name)?;
        let new_codec = module.new_codec().ok_or_else(|| {
            origin.contract("lists a codec but its library predates codecs (API 0.3)".to_owned())
        })?;
        let params = params.to_string();
        let object = new_codec(RStr::from(name), RStr::from(params.as_str()))
            .into_result()
            .map_err(|e| origin.plugin_error(e))?;
        Ok(CodecHandle {
            spec: object.spec(),
            object,
            origin,
        })
    }
}

/// A codec instance (stateless: the host keeps error feedback's residuals).
pub struct CodecHandle {
    object: CodecObject,
    spec: CodecSpec,
    origin: Origin,
}

impl CodecHandle {
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.origin.name
    }

    /// Whether it is lossless, unbiased or neither.
    pub fn spec(&self) -> CodecSpec {
        self.spec
    }

    /// The length of the encoding of `n` values, by the codec's size formula.
    ///
    /// # Errors
    /// [`Error::Plugin`].
    pub fn encoded_len(&self, n: usize) -> Result<u64> {
        self.object
            .encoded_len(n as u64)
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))
    }

    /// Encodes `values` with `seed`.
    ///
    /// # Errors
    /// [`Error::Plugin`]; [`Error::PluginContract`] for an encoding whose length is not the
    /// codec's size formula's.
    pub fn encode(&self, values: &[f32], seed: u64) -> Result<Vec<u8>> {
        let bytes = self
            .object
            .encode(RSlice::from(values), seed)
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))?;
        let expected = self.encoded_len(values.len())?;
        if bytes.len() as u64 != expected {
            return Err(self.origin.contract(format!(
                "encoded {} values in {} bytes; its size formula says {expected}",
                values.len(),
                bytes.len()
            )));
        }
        Ok(bytes.into_vec())
    }

    /// Decodes `n` values from `bytes` encoded with `seed`.
    ///
    /// # Errors
    /// [`Error::Plugin`] (bytes that are not an encoding); [`Error::PluginContract`] for a
    /// wrong number of values or a non-finite one.
    pub fn decode(&self, bytes: &[u8], n: usize, seed: u64) -> Result<Vec<f32>> {
        let values = self
            .object
            .decode(RSlice::from(bytes), n as u64, seed)
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))?;
        if values.len() != n {
            return Err(self
                .origin
                .contract(format!("decoded {} values, {n} were encoded", values.len())));
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(self
                .origin
                .contract(format!("decoded value {i} is {}", values[i])));
        }
        Ok(values.into_vec())
    }
}

/// A loss instance.
pub struct LossHandle {
    object: LossObject,
    spec: LossSpec,
    origin: Origin,
}

impl LossHandle {
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.origin.name
    }

    /// What the loss needs from the host.
    pub fn spec(&self) -> LossSpec {
        self.spec
    }

    /// Evaluates the loss on `batch`.
    ///
    /// # Errors
    /// [`Error::Plugin`] for the plugin's own errors (including a caught panic);
    /// [`Error::PluginContract`] when the gradient has the wrong length; [`Error::NonFinite`]
    /// when the loss or a gradient entry is NaN or infinite (training diverged, which is the
    /// client's problem, not the plugin's).
    pub fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput> {
        let output = self
            .object
            .evaluate(batch)
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))?;
        let n = batch.len();
        let m = batch.kl_logp_policy.len();
        if output.grad_logp_policy.len() != n {
            return Err(self.origin.contract(format!(
                "{} gradient entries for {n} sequences",
                output.grad_logp_policy.len()
            )));
        }
        if !output.grad_kl_logp_policy.is_empty() && output.grad_kl_logp_policy.len() != m {
            return Err(self.origin.contract(format!(
                "{} KL gradient entries for {m} KL sequences",
                output.grad_kl_logp_policy.len()
            )));
        }
        let non_finite = |what: String| Error::NonFinite {
            what: format!("loss {:?}: {what}", self.origin.name),
        };
        if !output.loss.is_finite() {
            return Err(non_finite(format!("the loss is {}", output.loss)));
        }
        let gradients = output
            .grad_logp_policy
            .iter()
            .chain(output.grad_kl_logp_policy.iter());
        if let Some((i, g)) = gradients.enumerate().find(|(_, g)| !g.is_finite()) {
            return Err(non_finite(format!("gradient entry {i} is {g}")));
        }
        Ok(output)
    }
}

/// An aggregator instance (stateful).
pub struct AggregatorHandle {
    object: AggregatorObject,
    origin: Origin,
}

impl AggregatorHandle {
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.origin.name
    }

    /// What `client` must apply during local training from `global`.
    ///
    /// # Errors
    /// [`Error::Plugin`]; [`Error::PluginContract`] for an offset of the wrong length or with a
    /// non-finite entry.
    pub fn client_plan(&self, client: u32, global: &[f32]) -> Result<ClientPlan> {
        let plan = self
            .object
            .client_plan(client, RSlice::from(global))
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))?;
        let offsets = [
            ("gradient", &plan.gradient_offset),
            ("weight", &plan.weight_offset),
        ];
        for (what, offset) in offsets {
            if !offset.is_empty() && offset.len() != global.len() {
                return Err(self.origin.contract(format!(
                    "{what} offset of {} entries for {} parameters",
                    offset.len(),
                    global.len()
                )));
            }
            if let Some(i) = offset.iter().position(|x| !x.is_finite()) {
                return Err(self
                    .origin
                    .contract(format!("{what} offset entry {i} is {}", offset[i])));
            }
        }
        Ok(plan)
    }

    /// Aggregates one round.
    ///
    /// # Errors
    /// [`Error::Plugin`]; [`Error::PluginContract`] when the new global vector has the wrong
    /// length or holds a non-finite value.
    pub fn aggregate(&mut self, input: &AggregationInput<'_>) -> Result<AggregationOutput> {
        let output = self
            .object
            .aggregate(input)
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))?;
        if output.global.len() != input.global.len() {
            return Err(self.origin.contract(format!(
                "{} parameters for a model of {}",
                output.global.len(),
                input.global.len()
            )));
        }
        if let Some(i) = output.global.iter().position(|x| !x.is_finite()) {
            return Err(self
                .origin
                .contract(format!("parameter {i} is {}", output.global[i])));
        }
        Ok(output)
    }

    /// The aggregator's state, for a checkpoint.
    ///
    /// # Errors
    /// [`Error::Plugin`].
    pub fn save_state(&self) -> Result<Vec<u8>> {
        Ok(self
            .object
            .save_state()
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))?
            .into_vec())
    }

    /// Restores a checkpointed state.
    ///
    /// # Errors
    /// [`Error::Plugin`].
    pub fn load_state(&mut self, state: &[u8]) -> Result<()> {
        self.object
            .load_state(RSlice::from(state))
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))
    }
}

/// A partitioner instance.
pub struct PartitionerHandle {
    object: PartitionerObject,
    origin: Origin,
}

impl PartitionerHandle {
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.origin.name
    }

    /// Partitions the examples.
    ///
    /// # Errors
    /// [`Error::Plugin`]; [`Error::PluginContract`] when an assignment points past the examples.
    pub fn partition(&self, input: &PartitionInput<'_>) -> Result<PartitionOutput> {
        let output = self
            .object
            .partition(input)
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))?;
        let n = input.examples.len() as u64;
        for (client, items) in output.clients.iter().enumerate() {
            if let Some(bad) = items.iter().find(|a| a.example >= n) {
                return Err(self.origin.contract(format!(
                    "client {client} was given example {} of {n}",
                    bad.example
                )));
            }
        }
        Ok(output)
    }
}

/// A scorer instance.
pub struct ScorerHandle {
    object: ScorerObject,
    spec: ScorerSpec,
    origin: Origin,
}

impl ScorerHandle {
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.origin.name
    }

    /// What the scorer needs from the host.
    pub fn spec(&self) -> ScorerSpec {
        self.spec
    }

    /// Scores `items`, calling back into `host` for generation if the scorer needs it.
    ///
    /// # Errors
    /// [`Error::Plugin`]; [`Error::PluginContract`] when the item count differs from the input.
    pub fn score(&self, items: &[ScoreItem], host: HostServicesRef<'_>) -> Result<ScoreOutput> {
        let output = self
            .object
            .score(RSlice::from(items), host)
            .into_result()
            .map_err(|e| self.origin.plugin_error(e))?;
        if output.items.len() != items.len() {
            return Err(self.origin.contract(format!(
                "{} scores for {} items",
                output.items.len(),
                items.len()
            )));
        }
        Ok(output)
    }
}

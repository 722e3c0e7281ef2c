//! Test helpers for scorer plugins: [`ScriptedHost`], a host whose "local model" answers from a
//! script and records what it was asked, for scorers that call `HostServices::generate` or
//! read option probabilities with `HostServices::option_logprobs`.

use std::sync::{Mutex, PoisonError};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RString, RVec},
};

use crate::{
    GenerationRequest, HostServices, HostServicesRef, HostServices_TO, OptionsRequest, PluginError,
};

/// A host whose `generate` returns the scripted replies in order (the last one again once they
/// run out), `Err` as a `Failed` error, and records every request.
#[derive(Debug, Default)]
pub struct ScriptedHost {
    replies: Vec<Result<String, String>>,
    requests: Mutex<Vec<GenerationRequest>>,
    /// Scripted `option_logprobs` answers, as `replies`.
    logprobs: Vec<Result<Vec<f64>, String>>,
    options_requests: Mutex<Vec<OptionsRequest>>,
}

impl ScriptedHost {
    /// A host answering `replies` in order; with none, every call fails.
    pub fn new(replies: Vec<Result<String, String>>) -> Self {
        Self {
            replies,
            ..Self::default()
        }
    }

    /// A host whose `option_logprobs` answers `logprobs` in order (each the whole
    /// position-major vector), the last one again once they run out.
    pub fn with_logprobs(logprobs: Vec<Result<Vec<f64>, String>>) -> Self {
        Self {
            logprobs,
            ..Self::default()
        }
    }

    /// The option requests received so far, in order.
    pub fn options_requests(&self) -> Vec<OptionsRequest> {
        self.options_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The host as a scorer's `score` takes it.
    pub fn services(&self) -> HostServicesRef<'_> {
        HostServices_TO::from_ptr(self, TD_Opaque)
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<GenerationRequest> {
        // A panic while the lock was held cannot leave the list half-written, so a poisoned
        // lock still holds the requests as they were.
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl HostServices for ScriptedHost {
    fn generate(&self, request: &GenerationRequest) -> RResult<RString, PluginError> {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = match self.replies.len() {
            0 => Err("the scripted host has no replies".to_owned()),
            n => self.replies[requests.len().min(n - 1)].clone(),
        };
        requests.push(request.clone());
        match reply {
            Ok(text) => RResult::ROk(text.into()),
            Err(e) => RResult::RErr(PluginError::failed(e)),
        }
    }

    fn option_logprobs(&self, request: &OptionsRequest) -> RResult<RVec<f64>, PluginError> {
        let mut requests = self
            .options_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let reply = match self.logprobs.len() {
            0 => Err("the scripted host has no option log-probabilities".to_owned()),
            n => self.logprobs[requests.len().min(n - 1)].clone(),
        };
        requests.push(request.clone());
        match reply {
            Ok(values) => RResult::ROk(values.into()),
            Err(e) => RResult::RErr(PluginError::failed(e)),
        }
    }
}

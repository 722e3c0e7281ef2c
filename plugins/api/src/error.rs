//! The error type that crosses the plugin boundary.
//!
//! Plugins return `RResult<T, PluginError>`; the host turns it into its own error enum and
//! prefixes the plugin's file and component name.

use std::fmt;

use abi_stable::{std_types::RString, StableAbi};

/// What went wrong inside a plugin call.
///
/// Adding a variant changes the type's layout, which abi_stable reports as an incompatible
/// plugin at load time; bump the API version with it.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The component name is not provided by this plugin.
    UnknownComponent,
    /// The parameters (a JSON object) were malformed or out of range.
    InvalidParams,
    /// The inputs of a call were inconsistent (lengths, labels, missing reference log-probs).
    InvalidInput,
    /// The plugin panicked; the panic was caught inside the plugin.
    Panicked,
    /// Any other failure (I/O, network, a judge that did not answer).
    Failed,
}

impl ErrorKind {
    /// A short lowercase name, as used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::UnknownComponent => "unknown component",
            ErrorKind::InvalidParams => "invalid parameters",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Failed => "failed",
        }
    }
}

/// An error returned by a plugin: a kind and a lowercase message without a final period.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// The category of the failure.
    pub kind: ErrorKind,
    /// A human-readable message that names the offending parameter or input.
    pub message: RString,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: RString::from(message.into()),
        }
    }

    /// Malformed or out-of-range parameters.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParams, message)
    }

    /// Inconsistent inputs.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Any other failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ErrorKind::Panicked {
            write!(f, "panicked: {}", self.message)
        } else {
            write!(f, "{}", self.message)
        }
    }
}

impl std::error::Error for PluginError {}

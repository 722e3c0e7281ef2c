//! Parameter getters the API's [`Params`] lacks (booleans, optional strings),
//! with the same error style: the key, the bad value, what is expected.

use fedpref_plugin_api::{Params, PluginError};

/// A boolean, or `default` when the key is absent.
///
/// # Errors
/// `InvalidParams` naming the key when the value is not `true` or `false`.
pub fn bool_or(params: &Params, key: &str, default: bool) -> Result<bool, PluginError> {
    match params.value(key) {
        None => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| {
            PluginError::invalid_params(format!("`{key}` must be true or false, got {v}"))
        }),
    }
}

/// A non-empty string, or `None` when the key is absent.
///
/// # Errors
/// `InvalidParams` naming the key when the value is not a non-empty string.
pub fn opt_str(params: &Params, key: &str) -> Result<Option<String>, PluginError> {
    match params.value(key) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(v) => Err(PluginError::invalid_params(format!(
            "`{key}` must be a non-empty string, got {v}"
        ))),
    }
}

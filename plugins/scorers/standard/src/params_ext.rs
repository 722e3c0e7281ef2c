//! Parameter getters the API's [`Params`] lacks (booleans, bounded integers, optional strings),
//! with the same error style: the key, the bad value, what is expected.

use fedpref_plugin_api::{check_range, Params, PluginError};

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

/// A whole number in `[low, high]`, or `default` when the key is absent.
///
/// # Errors
/// `InvalidParams` naming the key for a fraction or a value out of range.
pub fn u32_in(
    params: &Params,
    key: &str,
    default: u32,
    low: u32,
    high: u32,
) -> Result<u32, PluginError> {
    let value = check_range(
        key,
        params.f64_or(key, f64::from(default))?,
        f64::from(low),
        f64::from(high),
    )?;
    if value.fract() != 0.0 {
        return Err(PluginError::invalid_params(format!(
            "`{key}` = {value} must be a whole number"
        )));
    }
    // In [low, high] ⊂ u32 and whole after the checks, so the conversion is exact.
    Ok(value as u32)
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

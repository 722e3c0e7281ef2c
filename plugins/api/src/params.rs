//! Component parameters: a JSON object (the component's TOML table, converted by the host), read
//! with typed getters whose errors name the key and the expected value.

use std::{
    cell::RefCell,
    collections::BTreeSet,
    fmt::Display,
    ops::{Bound, RangeBounds},
};

use serde_json::{Map, Value};

use crate::PluginError;

/// The parameters of one component instance.
///
/// Read every key with a getter, then call [`Params::finish`], which rejects keys nobody read
/// so that a typo in a config is an error instead of a silently ignored setting.
#[derive(Debug)]
pub struct Params {
    values: Map<String, Value>,
    read: RefCell<BTreeSet<String>>,
}

impl Params {
    /// Parses `json`, which must be an object (an empty string means no parameters).
    ///
    /// # Errors
    /// `InvalidParams` when the text is not a JSON object.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let values = if json.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(json) {
                Ok(Value::Object(map)) => map,
                Ok(other) => {
                    return Err(PluginError::invalid_params(format!(
                        "parameters must be a table, got {other}"
                    )))
                }
                Err(e) => {
                    return Err(PluginError::invalid_params(format!(
                        "parameters are not valid JSON: {e}"
                    )))
                }
            }
        };
        Ok(Self {
            values,
            read: RefCell::default(),
        })
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.read.borrow_mut().insert(key.to_owned());
        self.values.get(key)
    }

    /// A number, or `default` when the key is absent.
    ///
    /// # Errors
    /// `InvalidParams` naming the key when the value is not a number.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, PluginError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| {
                PluginError::invalid_params(format!("`{key}` must be a number, got {v}"))
            }),
        }
    }

    /// A whole number in `range`, or `default` when the key is absent, as any unsigned integer
    /// type (`u32`, `u64`, `usize`, ...): `params.whole_or("retries", 3u32, 0..=20)`,
    /// `params.whole_or("byzantine", 1u64, 0..)`.
    ///
    /// JSON has one number type, so `2.0` counts as the whole number 2 (a TOML float written
    /// for a count stays usable); `2.5`, `-1` and strings do not.
    ///
    /// # Errors
    /// `InvalidParams` naming the key, the range and the bad value, also when the value does
    /// not fit `T`.
    pub fn whole_or<T>(
        &self,
        key: &str,
        default: T,
        range: impl RangeBounds<T>,
    ) -> Result<T, PluginError>
    where
        T: Copy + Display + PartialOrd + TryFrom<u64>,
    {
        let Some(value) = self.get(key) else {
            return Ok(default);
        };
        whole(value)
            .and_then(|n| T::try_from(n).ok())
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                PluginError::invalid_params(format!(
                    "`{key}` must be a whole number{}, got {value}",
                    describe(&range)
                ))
            })
    }

    /// A string, or `default` when the key is absent.
    ///
    /// # Errors
    /// `InvalidParams` naming the key when the value is not a string.
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> Result<&'a str, PluginError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_str().ok_or_else(|| {
                PluginError::invalid_params(format!("`{key}` must be a string, got {v}"))
            }),
        }
    }

    /// One of `allowed` strings, or `default` when the key is absent.
    ///
    /// # Errors
    /// `InvalidParams` naming the key, the bad value and the allowed ones.
    pub fn choice<'a>(
        &'a self,
        key: &str,
        allowed: &[&str],
        default: &'a str,
    ) -> Result<&'a str, PluginError> {
        let value = self.str_or(key, default)?;
        if allowed.contains(&value) {
            Ok(value)
        } else {
            Err(PluginError::invalid_params(format!(
                "`{key}` = {value:?} is not one of {}",
                allowed.join(", ")
            )))
        }
    }

    /// The raw value of `key`, if present (for parameters such as `"auto"`-or-number).
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }

    /// Checks that every key present was read.
    ///
    /// # Errors
    /// `InvalidParams` naming the unknown keys and the known ones.
    pub fn finish(&self) -> Result<(), PluginError> {
        let read = self.read.borrow();
        let unknown: Vec<&str> = self
            .values
            .keys()
            .filter(|k| !read.contains(*k))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            let known: Vec<&str> = read.iter().map(String::as_str).collect();
            Err(PluginError::invalid_params(format!(
                "unknown parameter {} (known: {})",
                unknown
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                known.join(", ")
            )))
        }
    }
}

/// The value of a JSON number that is a whole number `>= 0` (`2` or `2.0`), if it is one.
fn whole(value: &Value) -> Option<u64> {
    // Below 2^53 every whole f64 is exact, and so is its conversion to u64.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|x| x.fract() == 0.0 && (0.0..=EXACT).contains(x))
            .map(|x| x as u64)
    })
}

/// ` >= 1`, ` in [0, 20]` or ` <= 9`: the bounds of `range` as the error messages put them.
fn describe<T: Display>(range: &impl RangeBounds<T>) -> String {
    match (range.start_bound(), range.end_bound()) {
        (Bound::Included(low), Bound::Included(high)) => format!(" in [{low}, {high}]"),
        (start, end) => {
            let low = match start {
                Bound::Included(low) => Some(format!(">= {low}")),
                Bound::Excluded(low) => Some(format!("> {low}")),
                Bound::Unbounded => None,
            };
            let high = match end {
                Bound::Included(high) => Some(format!("<= {high}")),
                Bound::Excluded(high) => Some(format!("< {high}")),
                Bound::Unbounded => None,
            };
            let parts: Vec<String> = low.into_iter().chain(high).collect();
            if parts.is_empty() {
                String::new()
            } else {
                format!(" {}", parts.join(" and "))
            }
        }
    }
}

/// Checks `value` lies in `[low, high]`.
///
/// # Errors
/// `InvalidParams` naming the key and the range.
pub fn check_range(key: &str, value: f64, low: f64, high: f64) -> Result<f64, PluginError> {
    if value.is_finite() && value >= low && value <= high {
        Ok(value)
    } else {
        Err(PluginError::invalid_params(format!(
            "`{key}` = {value} is outside [{low}, {high}]"
        )))
    }
}

/// Checks `value` is finite and `> 0` (a scale such as β, a learning rate, a weight).
///
/// # Errors
/// `InvalidParams` naming the key and the bad value.
pub fn check_positive(key: &str, value: f64) -> Result<f64, PluginError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(PluginError::invalid_params(format!(
            "`{key}` = {value} must be a finite number > 0"
        )))
    }
}

/// Checks `value` is finite and `>= 0` (a margin, a proximal weight).
///
/// # Errors
/// `InvalidParams` naming the key and the bad value.
pub fn check_non_negative(key: &str, value: f64) -> Result<f64, PluginError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(PluginError::invalid_params(format!(
            "`{key}` = {value} must be a finite number >= 0"
        )))
    }
}

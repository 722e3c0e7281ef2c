//! The checkpoint bytes of the robust rules, which keep no state: the header of fedpref's
//! aggregator state format alone (the same layout as `fedpref-aggregator-fedopt`'s `state.rs`),
//! so that a checkpoint of another aggregator is refused instead of silently accepted.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"FPAGGST\0"
//! 8       4     format version, u32 LE = 1
//! 12      1     component name length L, u8
//! 13      L     component name, UTF-8 ("median", "krum", ...); no body follows
//! ```

use fedpref_plugin_api::PluginError;

/// The first eight bytes of every state.
pub const MAGIC: [u8; 8] = *b"FPAGGST\0";
/// The format version written and read.
pub const VERSION: u32 = 1;

/// The state of the stateless rule `component` (a short name, under 256 bytes).
pub fn header(component: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(13 + component.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    // Component names are short literals of this crate; `min` only guards the cast.
    let name = &component.as_bytes()[..component.len().min(255)];
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes
}

/// Checks that `bytes` is exactly what [`header`] writes for `component`.
///
/// # Errors
/// `InvalidInput` naming what does not match: magic, version, component or length.
pub fn check(bytes: &[u8], component: &str) -> Result<(), PluginError> {
    if bytes.len() < 13 || bytes[..8] != MAGIC {
        let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(PluginError::invalid_input(format!(
            "{component}: these {} bytes are not a fedpref aggregator state (they start with [{}], expected the magic {:?})",
            bytes.len(),
            shown.join(" "),
            String::from_utf8_lossy(&MAGIC[..7])
        )));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(PluginError::invalid_input(format!(
            "{component}: state format version {version} is not supported (this plugin reads version {VERSION})"
        )));
    }
    let len = usize::from(bytes[12]);
    if bytes.len() < 13 + len {
        return Err(PluginError::invalid_input(format!(
            "{component}: the state is truncated: its component name needs {len} bytes at offset 13, {} left",
            bytes.len() - 13
        )));
    }
    let name = &bytes[13..13 + len];
    if name != component.as_bytes() {
        return Err(PluginError::invalid_input(format!(
            "the state was written by aggregator {:?}, not {component:?}",
            String::from_utf8_lossy(name)
        )));
    }
    if bytes.len() != 13 + len {
        return Err(PluginError::invalid_input(format!(
            "{component}: keeps no state, but the state has {} bytes after its header",
            bytes.len() - 13 - len
        )));
    }
    Ok(())
}

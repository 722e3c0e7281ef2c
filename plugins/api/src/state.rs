//! The checkpoint format of aggregator state: a small little-endian binary layout, so that
//! every `f32` (momentum, moments, control variates) round-trips bit for bit.
//!
//! An aggregator's `save_state` writes a [`StateWriter`] and its `load_state` reads the bytes
//! back with a [`StateReader`]; a rule that keeps no state writes the [`header`] alone and
//! checks it with [`check_stateless`]. The host stores the bytes in `checkpoints/round-NNNN/`.
//! This is plain Rust on the plugin side of the boundary, not part of the ABI: the host only
//! ever sees the bytes.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"FPAGGST\0"
//! 8       4     format version, u32 LE (this module writes and reads 1)
//! 12      1     component name length L, u8
//! 13      L     component name, UTF-8 ("fedadam", "scaffold", "median", ...)
//! 13+L    ...   body: the component's fields in the order its `save_state` documents, each
//!               either a u64 LE scalar or an f32 vector = u64 LE length n, then n f32 LE bit
//!               patterns; empty for a stateless rule
//! ```
//!
//! The reader refuses other magic, a newer version, another component's name, truncated
//! fields and trailing bytes, each with an `InvalidInput` message naming the component.
//!
//! ```
//! use fedpref_plugin_api::state::{StateReader, StateWriter};
//!
//! let mut w = StateWriter::new("fedavgm");
//! w.u64(3);
//! w.f32s(&[0.5, -1.0]);
//! let bytes = w.finish();
//!
//! let mut r = StateReader::new(&bytes, "fedavgm").unwrap();
//! assert_eq!(r.u64("steps").unwrap(), 3);
//! assert_eq!(r.f32s("momentum buffer").unwrap(), [0.5, -1.0]);
//! r.finish().unwrap();
//! assert!(StateReader::new(&bytes, "fedadam").is_err());
//! ```

use crate::PluginError;

/// The first eight bytes of every state.
pub const MAGIC: [u8; 8] = *b"FPAGGST\0";
/// The format version this module writes and reads.
pub const VERSION: u32 = 1;

/// Builds the bytes of one component's state.
#[derive(Debug)]
pub struct StateWriter {
    bytes: Vec<u8>,
}

impl StateWriter {
    /// Starts a state of `component` (at most 255 bytes of name) with the header.
    pub fn new(component: &str) -> Self {
        let mut bytes = Vec::with_capacity(16 + component.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        // Component names are short literals of their plugin; `min` only guards the cast.
        let name = &component.as_bytes()[..component.len().min(255)];
        bytes.push(name.len() as u8);
        bytes.extend_from_slice(name);
        Self { bytes }
    }

    /// Appends a scalar.
    pub fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// Appends a vector: its length, then the bit pattern of every entry.
    pub fn f32s(&mut self, values: &[f32]) {
        self.u64(values.len() as u64);
        self.bytes.reserve(4 * values.len());
        for v in values {
            self.bytes.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }

    /// The finished bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// The whole state of a rule that keeps none: the header naming `component`.
pub fn header(component: &str) -> Vec<u8> {
    StateWriter::new(component).finish()
}

/// Checks that `bytes` is exactly what [`header`] writes for `component`.
///
/// # Errors
/// `InvalidInput` naming what does not match: magic, version, component or length.
pub fn check_stateless(bytes: &[u8], component: &str) -> Result<(), PluginError> {
    let reader = StateReader::new(bytes, component)?;
    match reader.left() {
        0 => Ok(()),
        left => Err(PluginError::invalid_input(format!(
            "{component}: keeps no state, but the state has {left} bytes after its header"
        ))),
    }
}

/// Reads back a state written by [`StateWriter`].
#[derive(Debug)]
pub struct StateReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    component: &'a str,
}

impl<'a> StateReader<'a> {
    /// Checks the header: magic, version and that the state belongs to `component`.
    ///
    /// # Errors
    /// `InvalidInput` naming what does not match.
    pub fn new(bytes: &'a [u8], component: &'a str) -> Result<Self, PluginError> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            return Err(PluginError::invalid_input(format!(
                "{component}: these {} bytes are not a fedpref aggregator state (they start with [{}], expected the magic {:?})",
                bytes.len(),
                shown.join(" "),
                String::from_utf8_lossy(&MAGIC[..7])
            )));
        }
        let mut reader = Self {
            bytes,
            pos: MAGIC.len(),
            component,
        };
        let version = u32::from_le_bytes(reader.take::<4>("format version")?);
        if version != VERSION {
            return Err(PluginError::invalid_input(format!(
                "{component}: state format version {version} is not supported (this plugin reads version {VERSION})"
            )));
        }
        let [len] = reader.take::<1>("component name length")?;
        let name = reader.slice(usize::from(len), "its component name")?;
        if name != component.as_bytes() {
            return Err(PluginError::invalid_input(format!(
                "the state was written by aggregator {:?}, not {component:?}",
                String::from_utf8_lossy(name)
            )));
        }
        Ok(reader)
    }

    /// The number of bytes not read yet.
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn slice(&mut self, n: usize, what: &str) -> Result<&'a [u8], PluginError> {
        let left = self.left();
        if n > left {
            return Err(PluginError::invalid_input(format!(
                "{}: the state is truncated: {what} needs {n} bytes at offset {}, {left} left",
                self.component, self.pos
            )));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], PluginError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.slice(N, what)?);
        Ok(out)
    }

    /// Reads a scalar written by [`StateWriter::u64`]; `what` names it in errors.
    ///
    /// # Errors
    /// `InvalidInput` when the bytes run out.
    pub fn u64(&mut self, what: &str) -> Result<u64, PluginError> {
        Ok(u64::from_le_bytes(self.take::<8>(what)?))
    }

    /// Reads a vector written by [`StateWriter::f32s`]; `what` names it in errors.
    ///
    /// # Errors
    /// `InvalidInput` when the bytes run out (checked before allocating).
    pub fn f32s(&mut self, what: &str) -> Result<Vec<f32>, PluginError> {
        let n = self.u64(what)?;
        let left = self.left() / 4;
        let n = usize::try_from(n).ok().filter(|&n| n <= left).ok_or_else(|| {
            PluginError::invalid_input(format!(
                "{}: the state is truncated: {what} claims {n} values at offset {}, room for {left}",
                self.component, self.pos
            ))
        })?;
        let raw = self.slice(4 * n, what)?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| f32::from_bits(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect())
    }

    /// Checks that every byte was read.
    ///
    /// # Errors
    /// `InvalidInput` on trailing bytes.
    pub fn finish(self) -> Result<(), PluginError> {
        match self.left() {
            0 => Ok(()),
            left => Err(PluginError::invalid_input(format!(
                "{}: the state has {left} unexpected trailing bytes after offset {}",
                self.component, self.pos
            ))),
        }
    }
}

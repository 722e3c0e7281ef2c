//! Codec components: how a flat `f32` vector (a client's update, or the change of the global
//! adapter the server broadcasts) becomes the bytes that cross the network, and back.
//!
//! A codec is stateless: the host keeps what persists between rounds (error feedback's residual)
//! and hands every call a `seed` that both ends share (stochastic rounding's draws, random-k's
//! coordinates), derived from the run's seed, the round, the client and the direction. Every
//! encoding's length must equal [`CodecFunction::encoded_len`], the codec's documented size
//! formula, which the host checks: the byte counts a run reports are the encodings' own lengths.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, RResult, RSlice, RVec},
    StableAbi,
};

use crate::PluginError;

/// What a codec is, for the host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecSpec {
    /// `decode(encode(x))` equals `x` bit for bit.
    pub lossless: bool,
    /// `decode(encode(x, seed))` equals `x` in expectation over the seed (stochastic rounding,
    /// random-k rescaled). A codec that is neither (top-k, rounding to nearest) is biased: the
    /// host can carry what it drops into the next round (error feedback).
    pub unbiased: bool,
}

/// A codec, as a plugin author writes it.
pub trait CodecFunction: Send + Sync + 'static {
    /// What the codec is.
    fn spec(&self) -> CodecSpec;
    /// The length in bytes of the encoding of `n` values.
    fn encoded_len(&self, n: u64) -> u64;
    /// Encodes `values`, drawing any randomness from `seed`.
    ///
    /// # Errors
    /// `InvalidInput` for values the codec cannot encode (a non-finite one).
    fn encode(&self, values: &[f32], seed: u64) -> Result<Vec<u8>, PluginError>;
    /// Decodes `n` values from `bytes`, encoded with the same `seed`.
    ///
    /// # Errors
    /// `InvalidInput` when `bytes` is not an encoding of `n` values by this codec.
    fn decode(&self, bytes: &[u8], n: u64, seed: u64) -> Result<Vec<f32>, PluginError>;
}

/// The FFI-safe face of a codec. Every method catches panics of the implementation.
#[sabi_trait]
pub trait Codec: Send + Sync {
    /// See [`CodecFunction::spec`].
    fn spec(&self) -> CodecSpec;
    /// See [`CodecFunction::encoded_len`].
    fn encoded_len(&self, n: u64) -> RResult<u64, PluginError>;
    /// See [`CodecFunction::encode`].
    fn encode(&self, values: RSlice<'_, f32>, seed: u64) -> RResult<RVec<u8>, PluginError>;
    /// See [`CodecFunction::decode`].
    #[sabi(last_prefix_field)]
    fn decode(&self, bytes: RSlice<'_, u8>, n: u64, seed: u64) -> RResult<RVec<f32>, PluginError>;
}

/// An owned codec object crossing the plugin boundary.
pub type CodecObject = Codec_TO<'static, RBox<()>>;

/// Adapts a [`CodecFunction`] to the FFI trait with panic guards.
pub struct CodecBox<T>(T);

impl<T: CodecFunction> CodecBox<T> {
    /// Boxes `codec` as an FFI object.
    // The adapter only ever lives inside the FFI object, so that is what `new` returns.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(codec: T) -> CodecObject {
        Codec_TO::from_value(CodecBox(codec), abi_stable::sabi_trait::TD_Opaque)
    }
}

impl<T: CodecFunction> Codec for CodecBox<T> {
    fn spec(&self) -> CodecSpec {
        // A plain getter of constants; a panic here would abort, so it is kept trivial.
        self.0.spec()
    }

    fn encoded_len(&self, n: u64) -> RResult<u64, PluginError> {
        crate::guard(|| Ok(self.0.encoded_len(n)))
    }

    fn encode(&self, values: RSlice<'_, f32>, seed: u64) -> RResult<RVec<u8>, PluginError> {
        crate::guard(|| self.0.encode(values.as_slice(), seed).map(RVec::from))
    }

    fn decode(&self, bytes: RSlice<'_, u8>, n: u64, seed: u64) -> RResult<RVec<f32>, PluginError> {
        crate::guard(|| self.0.decode(bytes.as_slice(), n, seed).map(RVec::from))
    }
}

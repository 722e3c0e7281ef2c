//! A round's compressed links ([`crate::compression`]): the downlink broadcast before the
//! clients train, the model each client starts from and the bytes it is sent, and each update
//! through the uplink after. The simulated round and the deployed server share these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    plan::RunPlan,
    sampling::{derive, Stream},
    state::LinkState,
};
use crate::{
    compression::{difference, norm, sum, transmit, Transmission, NO_CODEC},
    plugin_host::{CodecHandle, PluginHost},
    Result,
};

/// The run's codecs.
pub struct Links {
    uplink: Option<CodecHandle>,
    downlink: Option<CodecHandle>,
    error_feedback: bool,
}

/// A round's communication facts, in its record (when a codec is configured).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompressionRecord {
    /// The uplink codec (`none`: raw float32 updates).
    pub uplink: String,
    /// The downlink codec (`none`: the whole global adapter to every client).
    pub downlink: String,
    /// Bytes each client sent, by client.
    pub up: BTreeMap<u32, u64>,
    /// Bytes each client was sent (the broadcasts it had missed, and its plan), by client.
    pub down: BTreeMap<u32, u64>,
    /// Bytes of this round's broadcast (0 without downlink compression).
    pub broadcast: u64,
    /// Seconds encoding, both directions.
    pub encode_seconds: f64,
    /// Seconds decoding, both directions.
    pub decode_seconds: f64,
    /// Mean norm of the error-feedback residuals the round's senders hold (0 without).
    pub residual_norm: f64,
}

impl Links {
    /// The codecs `plan` configures, with their `[codecs.<name>]` parameters.
    ///
    /// # Errors
    /// [`crate::Error::UnknownComponent`], or a codec's parameter error.
    pub fn new(plan: &RunPlan, host: &PluginHost) -> Result<Self> {
        let config = &plan.config;
        let codec = |name: Option<&str>| {
            name.map(|name| host.codec(name, &plan.codec_params(name)))
                .transpose()
        };
        Ok(Self {
            uplink: codec(config.compression.uplink_codec())?,
            downlink: codec(config.compression.downlink_codec())?,
            error_feedback: config.compression.error_feedback,
        })
    }

    /// Whether any codec is configured; without one, clients get the global adapter and send
    /// their parameters, as before codecs existed.
    pub fn compressed(&self) -> bool {
        self.uplink.is_some() || self.downlink.is_some()
    }

    /// An empty record for a round, when any codec is configured.
    pub fn record(&self) -> Option<CompressionRecord> {
        let name = |c: &Option<CodecHandle>| c.as_ref().map_or(NO_CODEC, |c| c.name()).to_owned();
        self.compressed().then(|| CompressionRecord {
            uplink: name(&self.uplink),
            downlink: name(&self.downlink),
            ..CompressionRecord::default()
        })
    }

    /// Before round `round`'s clients train: broadcasts `global − x̂` through the downlink codec
    /// and moves `x̂` by what it decodes to. Returns the broadcast's bytes (none without
    /// downlink compression).
    ///
    /// # Errors
    /// Codec errors.
    pub fn broadcast(
        &self,
        seed: u64,
        round: u32,
        global: &[f32],
        links: &mut LinkState,
        record: &mut Option<CompressionRecord>,
    ) -> Result<Option<Vec<u8>>> {
        let (Some(codec), Some(public)) = (&self.downlink, links.public.as_mut()) else {
            return Ok(None);
        };
        let sent = transmit(
            codec,
            &difference(global, public),
            None,
            downlink_seed(seed, round),
        )?;
        *public = sum(public, &sent.decoded);
        links.broadcasts.truncate(round as usize);
        links.broadcasts.push(sent.bytes.len() as u64);
        if let Some(record) = record {
            record.broadcast = sent.bytes.len() as u64;
            record.encode_seconds += sent.encode_seconds;
            record.decode_seconds += sent.decode_seconds;
        }
        Ok(Some(sent.bytes))
    }

    /// A client's side of a broadcast: `public ← public + decode(bytes)`.
    ///
    /// # Errors
    /// Codec errors (bytes that are not a broadcast).
    pub fn receive_broadcast(
        &self,
        seed: u64,
        round: u32,
        bytes: &[u8],
        public: &mut Vec<f32>,
    ) -> Result<()> {
        if let Some(codec) = &self.downlink {
            let decoded = codec.decode(bytes, public.len(), downlink_seed(seed, round))?;
            *public = sum(public, &decoded);
        }
        Ok(())
    }

    /// Whether the downlink is compressed (clients hold `x̂`).
    pub fn downlink_compressed(&self) -> bool {
        self.downlink.is_some()
    }

    /// Whether a client keeps an error-feedback residual: a biased uplink codec with
    /// `compression.error_feedback`.
    pub fn keeps_residual(&self) -> bool {
        self.uplink.as_ref().is_some_and(|codec| {
            let spec = codec.spec();
            self.error_feedback && !spec.unbiased && !spec.lossless
        })
    }

    /// A client's side of the uplink: `delta` (plus `residual`, which becomes what this
    /// encoding dropped) through the uplink codec, or as raw float32 without one.
    ///
    /// # Errors
    /// Codec errors.
    pub fn send_update(
        &self,
        (seed, round, client): (u64, u32, u32),
        delta: &[f32],
        residual: Option<&mut Vec<f32>>,
    ) -> Result<Transmission> {
        match &self.uplink {
            Some(codec) => transmit(codec, delta, residual, uplink_seed(seed, round, client)),
            None => Ok(Transmission {
                bytes: f32_le(delta),
                decoded: delta.to_vec(),
                encode_seconds: 0.0,
                decode_seconds: 0.0,
            }),
        }
    }

    /// The server's side of the uplink: the `n` values `client` sent as `bytes`.
    ///
    /// # Errors
    /// Codec errors, or raw bytes of the wrong length.
    pub fn receive_update(
        &self,
        (seed, round, client): (u64, u32, u32),
        bytes: &[u8],
        n: usize,
    ) -> Result<Vec<f32>> {
        match &self.uplink {
            Some(codec) => codec.decode(bytes, n, uplink_seed(seed, round, client)),
            None if bytes.len() == 4 * n => Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            None => Err(crate::Error::Usage(format!(
                "client {client} sent {} bytes for {n} float32 values",
                bytes.len()
            ))),
        }
    }

    /// The bytes `client` is sent, with `plan_floats` of client plan: the global adapter as
    /// float32 without downlink compression; with it, every broadcast since the client last
    /// took part, or `x̂` itself as float32 when that is smaller ([`Self::sends_model`]).
    pub fn downlink_bytes(
        &self,
        client: u32,
        (n_params, plan_floats): (usize, usize),
        links: &LinkState,
        record: &mut Option<CompressionRecord>,
    ) -> u64 {
        let raw = 4 * n_params as u64;
        let model = match self.missed(client, links) {
            Some(missed) => missed.min(raw),
            None => raw,
        };
        let bytes = model + 4 * plan_floats as u64;
        if let Some(record) = record {
            record.down.insert(client, bytes);
        }
        bytes
    }

    /// Bytes of the broadcasts `client` has not had; `None` without downlink compression.
    fn missed(&self, client: u32, links: &LinkState) -> Option<u64> {
        self.downlink.as_ref()?;
        let from = links.synced.get(&client).copied().unwrap_or(0) as usize;
        Some(
            links.broadcasts[from.min(links.broadcasts.len())..]
                .iter()
                .sum(),
        )
    }

    /// Whether `client` is sent `x̂` as float32 rather than its missed broadcasts (a client
    /// long away would otherwise be sent more than the model).
    pub fn sends_model(&self, client: u32, n_params: usize, links: &LinkState) -> bool {
        self.missed(client, links)
            .is_some_and(|missed| missed > 4 * n_params as u64)
    }

    /// Notes that `client` has every broadcast up to round `round`'s.
    pub fn mark_synced(&self, links: &mut LinkState, round: u32, client: u32) {
        if self.downlink.is_some() {
            links.synced.insert(client, round + 1);
        }
    }

    /// `client`'s update through the uplink: it trained from `start` to `params` and sends
    /// `params − start` (plus its residual, under error feedback); the server rebuilds
    /// `global + decoded`. Returns the rebuilt parameters and the bytes sent. Without codecs
    /// the parameters themselves travel as float32.
    ///
    /// # Errors
    /// Codec errors.
    pub fn uplink(
        &self,
        (seed, round, client): (u64, u32, u32),
        (global, start, params): (&[f32], &[f32], Vec<f32>),
        links: &mut LinkState,
        record: &mut Option<CompressionRecord>,
    ) -> Result<(Vec<f32>, u64)> {
        let Some(record) = record.as_mut() else {
            let raw = 4 * params.len() as u64;
            return Ok((params, raw));
        };
        let residual = self
            .keeps_residual()
            .then(|| links.residuals.entry(client).or_default());
        let sent =
            self.send_update((seed, round, client), &difference(&params, start), residual)?;
        record.encode_seconds += sent.encode_seconds;
        record.decode_seconds += sent.decode_seconds;
        let bytes = sent.bytes.len() as u64;
        record.up.insert(client, bytes);
        Ok((sum(global, &sent.decoded), bytes))
    }

    /// Closes a round's record: the mean residual norm of the clients that sent.
    pub fn finish(links: &LinkState, record: &mut Option<CompressionRecord>) {
        let Some(record) = record else { return };
        let norms: Vec<f64> = record
            .up
            .keys()
            .filter_map(|c| links.residuals.get(c))
            .map(|r| norm(r))
            .collect();
        record.residual_norm = if norms.is_empty() {
            0.0
        } else {
            norms.iter().sum::<f64>() / norms.len() as f64
        };
    }
}

fn uplink_seed(seed: u64, round: u32, client: u32) -> u64 {
    derive(
        seed,
        Stream::Compression,
        u64::from(round),
        u64::from(client),
    )
}

fn downlink_seed(seed: u64, round: u32) -> u64 {
    derive(seed, Stream::Compression, u64::from(round), u64::MAX)
}

/// Raw little-endian float32.
fn f32_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The model clients train from: `x̂` under downlink compression, else the global adapter.
pub fn start_model<'a>(global: &'a [f32], links: &'a LinkState) -> &'a [f32] {
    links.public.as_deref().unwrap_or(global)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin_host::test_plugins;

    #[test]
    fn a_client_long_away_is_sent_the_model_rather_than_its_missed_broadcasts() {
        let host = test_plugins::host();
        let links = Links {
            uplink: None,
            downlink: Some(
                host.codec("test-top-1", &serde_json::json!({}))
                    .expect("codec"),
            ),
            error_feedback: true,
        };
        // 100 parameters (400 bytes as float32), broadcasts of 150 bytes in rounds 0..=3.
        let mut state = LinkState {
            public: Some(vec![0.0; 100]),
            broadcasts: vec![150; 4],
            ..LinkState::default()
        };
        state.synced.insert(1, 2);
        state.synced.insert(2, 3);
        let mut record = links.record();
        let bytes = |client, state: &LinkState, record: &mut _| {
            links.downlink_bytes(client, (100, 5), state, record)
        };
        // Client 0 missed four (600 bytes): the model (400) instead; client 1 missed two
        // (300); client 2 one (150). Each plus its plan of 5 floats.
        assert_eq!(bytes(0, &state, &mut record), 420);
        assert_eq!(bytes(1, &state, &mut record), 320);
        assert_eq!(bytes(2, &state, &mut record), 170);
        assert!(links.sends_model(0, 100, &state) && !links.sends_model(1, 100, &state));
        let down = &record.expect("a record").down;
        assert_eq!(down.values().copied().collect::<Vec<_>>(), [420, 320, 170]);
        links.mark_synced(&mut state, 3, 0);
        assert_eq!(bytes(0, &state, &mut None), 20);
    }
}

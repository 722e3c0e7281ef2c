//! The reference log-prob cache: the summed answer log-prob of each sequence under the base
//! model (adapter off), computed once and kept on disk.
//!
//! Entries are keyed by a hash of the sequence's token ids and answer start, so every run of a
//! sweep (DPO, KTO and KTOR train on the same answers) shares them, and a resumed run finds
//! them again. Each value is computed from its sequence alone (a batch of one, no padding), so
//! it is a function of the sequence and nothing else: a cached value is exactly what any run
//! would compute, whoever computed it, and only missing sequences are ever computed.
//! The file is append-only (each record one `O_APPEND` write, so runs of a sweep in several
//! processes may share it): 8-byte key, 4-byte f32 value, 4-byte checksum (the first bytes of
//! SHA-256 over key and value), little endian. Loading scans for records whose checksum holds,
//! moving on byte by byte past bytes that are not one (a record torn by a kill, a flipped
//! bit), so damage costs only the records it touches: their sequences are computed again
//! when asked for. A header names the model it belongs to (and the format: caches of earlier
//! formats start afresh), so a cache of another model is never read.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::units::{Scored, Unit};
use crate::{Error, Result};
use fedpref_model::{
    logprobs::{reference_logprobs, MaskedSequence, SequenceBatch},
    Decoder,
};

/// Format 4: a checksum per record (format 3 had none; format 2 used FNV-1a keys over
/// native-endian integers; format 1 computed fixed chunks together, so its values depended on
/// the chunk's other members).
const MAGIC: &[u8; 8] = b"FPREFLP4";
const RECORD: usize = 16;

/// One record's bytes: key, value, checksum.
fn record(key: u64, value: f32) -> [u8; RECORD] {
    let mut bytes = [0u8; RECORD];
    bytes[..8].copy_from_slice(&key.to_le_bytes());
    bytes[8..12].copy_from_slice(&value.to_le_bytes());
    let check = Sha256::digest(&bytes[..12]);
    bytes[12..].copy_from_slice(&check[..4]);
    bytes
}

/// Every record of `bytes` whose checksum holds, resynchronizing byte by byte past damage (a
/// false match needs 32 bits to agree by chance).
fn scan_records(bytes: &[u8]) -> HashMap<u64, f32> {
    let mut values = HashMap::new();
    let mut at = 0;
    while at + RECORD <= bytes.len() {
        match read_record(&bytes[at..at + RECORD]) {
            Some((key, value)) => {
                values.insert(key, value);
                at += RECORD;
            }
            None => at += 1,
        }
    }
    values
}

/// The key and value of a record whose checksum holds.
fn read_record(bytes: &[u8]) -> Option<(u64, f32)> {
    let key = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let value = f32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    (record(key, value)[..] == bytes[..RECORD]).then_some((key, value))
}

/// A content-addressed store of reference log-probs.
pub struct ReferenceCache {
    path: PathBuf,
    values: HashMap<u64, f32>,
    writer: BufWriter<File>,
}

/// The cache key of a sequence: the first 8 bytes of SHA-256 over its answer start and ids,
/// little endian, so the same on every platform and Rust release.
pub fn sequence_key(sequence: &MaskedSequence) -> u64 {
    let answer_start = sequence
        .answer_mask
        .iter()
        .position(|&m| m)
        .unwrap_or(sequence.ids.len());
    let mut hasher = Sha256::new();
    hasher.update((answer_start as u64).to_le_bytes());
    for id in &sequence.ids {
        hasher.update(id.to_le_bytes());
    }
    first_u64(&hasher.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

impl ReferenceCache {
    /// Opens (or creates) the cache at `path` for the model identified by `model_id` (e.g. its
    /// file's hash); a cache written for another model is started afresh.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn open(path: &Path, model_id: &str) -> Result<Self> {
        let header = header(model_id);
        let mut values = HashMap::new();
        let mut ours = false;
        if let Ok(mut file) = File::open(path) {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| Error::io(path, e))?;
            if bytes.starts_with(&header) {
                values = scan_records(&bytes[header.len()..]);
                ours = true;
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        if !ours {
            // Another model's cache, an older format, or none: start afresh.
            file.set_len(0).map_err(|e| Error::io(path, e))?;
        }
        let mut writer = BufWriter::new(file);
        if !ours {
            writer.write_all(&header).map_err(|e| Error::io(path, e))?;
            writer.flush().map_err(|e| Error::io(path, e))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            values,
            writer,
        })
    }

    /// Number of cached sequences.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The cached value of `sequence`, if any.
    pub fn get(&self, sequence: &MaskedSequence) -> Option<f32> {
        self.values.get(&sequence_key(sequence)).copied()
    }

    /// Reference log-probs of `sequences`, computing the missing ones with `model` (adapter
    /// off) and recording them; `progress` is told how many sequences each call settled.
    ///
    /// Every missing sequence is computed on its own, as a batch of one: its value then does
    /// not depend on which other sequences were missing or on their lengths (a batch's row
    /// count and padding change the blocking of the matrix products, hence the rounding). So a
    /// value is the same bit for bit whichever run of the sweep computed it and whether or not
    /// a kill interrupted an earlier fill, and sequences already cached (DPO's answers, when
    /// KTO needs them again) are never recomputed.
    ///
    /// # Errors
    /// Model errors; [`Error::Io`] when the cache cannot be written.
    pub fn fill(
        &mut self,
        model: &Decoder,
        sequences: &[MaskedSequence],
        pad_id: u32,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<f32>> {
        let mut cached = 0;
        for sequence in sequences {
            let key = sequence_key(sequence);
            if self.values.contains_key(&key) {
                cached += 1;
                continue;
            }
            if cached > 0 {
                progress(std::mem::take(&mut cached));
            }
            let batch = SequenceBatch::new(std::slice::from_ref(sequence), pad_id, model.device())?;
            let logp = reference_logprobs(model, &batch)?[0];
            self.values.insert(key, logp);
            self.writer
                .write_all(&record(key, logp))
                .map_err(|e| Error::io(&self.path, e))?;
            self.writer.flush().map_err(|e| Error::io(&self.path, e))?;
            progress(1);
        }
        if cached > 0 {
            progress(cached);
        }
        Ok(sequences
            .iter()
            .map(|s| self.values[&sequence_key(s)])
            .collect())
    }
}

fn header(model_id: &str) -> Vec<u8> {
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&first_u64(&Sha256::digest(model_id.as_bytes())).to_le_bytes());
    header
}

/// Where local training gets reference log-probs of sequences it forms as it goes (KTO's KL
/// batch, drawn from each step's answers): the sweep's cache, or a test's stand-in.
pub trait ReferenceSource {
    /// The reference log-probs of `sequences` under `model` with its adapter off.
    ///
    /// # Errors
    /// Model errors; [`Error::Io`] when a cache cannot be written.
    fn reference(
        &mut self,
        model: &Decoder,
        sequences: &[MaskedSequence],
        pad_id: u32,
    ) -> Result<Vec<f32>>;
}

impl ReferenceSource for ReferenceCache {
    /// [`ReferenceCache::fill`]: cached values read, missing ones computed alone and recorded.
    fn reference(
        &mut self,
        model: &Decoder,
        sequences: &[MaskedSequence],
        pad_id: u32,
    ) -> Result<Vec<f32>> {
        self.fill(model, sequences, pad_id, |_| {})
    }
}

/// Fills the reference log-probs of `units` (every sequence of each) from `cache`, computing
/// the missing ones with `model`; `progress` is told how many sequences each call settled.
///
/// # Errors
/// Model errors; [`Error::Io`] when the cache cannot be written.
pub fn fill_units(
    cache: &mut ReferenceCache,
    model: &Decoder,
    units: &mut [Unit],
    pad_id: u32,
    progress: impl FnMut(usize),
) -> Result<()> {
    let mut scored: Vec<&mut Scored> = units.iter_mut().flat_map(Unit::scored_mut).collect();
    let sequences: Vec<MaskedSequence> = scored.iter().map(|s| s.sequence.clone()).collect();
    let values = cache.fill(model, &sequences, pad_id, progress)?;
    for (s, v) in scored.iter_mut().zip(values) {
        s.reference = v;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarBuilder;

    use super::*;
    use fedpref_model::testing::{random_weights, tiny_config};

    fn sequence(ids: &[u32], answer_start: usize) -> MaskedSequence {
        MaskedSequence {
            ids: ids.to_vec(),
            answer_mask: (0..ids.len()).map(|i| i >= answer_start).collect(),
        }
    }

    fn record_count(path: &Path) -> u64 {
        (std::fs::metadata(path).unwrap().len() - 16) / RECORD as u64
    }

    #[test]
    fn a_value_depends_on_its_sequence_alone_and_is_computed_once() {
        let cfg = tiny_config();
        let vb = VarBuilder::from_tensors(
            random_weights(&cfg, 3, DType::F32),
            DType::F32,
            &Device::Cpu,
        );
        let model = Decoder::load(vb, &cfg).unwrap();
        let (a, b, c) = (
            sequence(&[1, 5, 7, 9, 11, 4, 3], 3),
            sequence(&[1, 6, 8, 10, 2], 2),
            sequence(&[1, 5, 7, 12, 13, 14, 15, 16, 17, 2], 3),
        );
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one.bin"), dir.path().join("two.bin"));

        // One cache fills all three (a duplicate included); another only c and b, in another
        // order: b and c come out the same, bit for bit.
        let mut cache = ReferenceCache::open(&one, "m").unwrap();
        let mut settled = 0;
        let all = cache
            .fill(
                &model,
                &[a.clone(), b.clone(), c.clone(), a.clone()],
                2,
                |n| settled += n,
            )
            .unwrap();
        assert_eq!(settled, 4);
        assert_eq!(record_count(&one), 3);
        assert_eq!(all[0].to_bits(), all[3].to_bits());
        let mut other = ReferenceCache::open(&two, "m").unwrap();
        let some = other
            .fill(&model, &[c.clone(), b.clone()], 2, |_| {})
            .unwrap();
        assert_eq!(some[0].to_bits(), all[2].to_bits());
        assert_eq!(some[1].to_bits(), all[1].to_bits());
        // ... and equal a batch of one outside the cache.
        let batch = SequenceBatch::new(std::slice::from_ref(&b), 2, &Device::Cpu).unwrap();
        assert_eq!(
            reference_logprobs(&model, &batch).unwrap()[0].to_bits(),
            all[1].to_bits()
        );

        // Cached values are read back, not recomputed, also after reopening the file; another
        // model's cache is not read.
        drop(cache);
        let mut cache = ReferenceCache::open(&one, "m").unwrap();
        assert_eq!(cache.len(), 3);
        let again = cache
            .fill(&model, &[b.clone(), a.clone()], 2, |_| {})
            .unwrap();
        assert_eq!(record_count(&one), 3);
        assert_eq!(again[0].to_bits(), all[1].to_bits());
        assert_eq!(again[1].to_bits(), all[0].to_bits());
        drop(cache);
        assert!(ReferenceCache::open(&one, "another model")
            .unwrap()
            .is_empty());

        // A flipped bit in the middle record and a torn one at the end: the damaged value is
        // not read; asked for again, it is computed afresh, the same bit for bit.
        ReferenceCache::open(&one, "m")
            .unwrap()
            .fill(&model, &[a.clone(), b.clone(), c.clone()], 2, |_| {})
            .unwrap();
        let mut bytes = std::fs::read(&one).unwrap();
        bytes[16 + RECORD + 9] ^= 0x10;
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&one, &bytes).unwrap();
        let mut cache = ReferenceCache::open(&one, "m").unwrap();
        assert_eq!(cache.len(), 2, "the damaged record is skipped");
        let healed = cache
            .fill(&model, &[a.clone(), b.clone(), c.clone()], 2, |_| {})
            .unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&healed), bits(&all[..3]));
        assert_eq!(
            std::fs::metadata(&one).unwrap().len(),
            16 + 4 * RECORD as u64 + 3,
            "one record appended after the torn tail"
        );
        // Read back past the torn bytes: the appended record counts, the damaged one not.
        assert_eq!(ReferenceCache::open(&one, "m").unwrap().len(), 3);
    }
}

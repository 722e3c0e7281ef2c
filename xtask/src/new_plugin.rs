//! `cargo xtask new-plugin <kind> <name>`: scaffold `plugins/<kind>s/<name>/` from the templates
//! in `xtask/templates/`.
//!
//! The crate has the layout of the plugins in this repository (ARCHITECTURE.md, "Plugin
//! crates"): package `fedpref-<kind>-<name>`,
//! built as `cdylib` and `rlib`; a thin `lib.rs` (the module doc, `pub fn plugin() -> Plugin`
//! and `export_plugin!`); the method in a module named after it (`src/<name>.rs`, dashes as
//! underscores: the component type, its parameters, the API trait and the math over plain
//! slices); and `src/tests.rs`, which checks hand-computed values (for a loss, gradients against
//! finite differences too) with the shared helpers of `fedpref_plugin_api::testing`. Each
//! template compiles and passes its tests as generated; `docs/writing-a-*.md` walk through the
//! real plugins of each kind.

use std::{fs, path::Path, process::Command};

use anyhow::{bail, Context, Result};

use crate::{flags, flags::PluginKind, project_root};

/// One file of a scaffolded plugin: its path in the crate (with placeholders) and its template.
struct Template {
    path: &'static str,
    text: &'static str,
}

/// Module names the method's module cannot take: the crate's own files, and crates that the
/// generated `lib.rs` or tests name (a module of that name would shadow them).
const RESERVED_MODULES: [&str; 7] = [
    "lib",
    "tests",
    "abi_stable",
    "fedpref_plugin_api",
    "std",
    "core",
    "alloc",
];

/// Rust keywords, which cannot name a module (names hold lowercase letters, digits and dashes,
/// so only the lowercase ones matter).
const KEYWORDS: [&str; 50] = [
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while",
];

const CARGO_TOML: &str = include_str!("../templates/Cargo.toml.tmpl");

fn templates(kind: PluginKind) -> [Template; 4] {
    let [lib, method, tests] = match kind {
        PluginKind::Loss => [
            include_str!("../templates/loss/lib.rs.tmpl"),
            include_str!("../templates/loss/method.rs.tmpl"),
            include_str!("../templates/loss/tests.rs.tmpl"),
        ],
        PluginKind::Aggregator => [
            include_str!("../templates/aggregator/lib.rs.tmpl"),
            include_str!("../templates/aggregator/method.rs.tmpl"),
            include_str!("../templates/aggregator/tests.rs.tmpl"),
        ],
        PluginKind::Partitioner => [
            include_str!("../templates/partitioner/lib.rs.tmpl"),
            include_str!("../templates/partitioner/method.rs.tmpl"),
            include_str!("../templates/partitioner/tests.rs.tmpl"),
        ],
        PluginKind::Scorer => [
            include_str!("../templates/scorer/lib.rs.tmpl"),
            include_str!("../templates/scorer/method.rs.tmpl"),
            include_str!("../templates/scorer/tests.rs.tmpl"),
        ],
        PluginKind::Codec => [
            include_str!("../templates/codec/lib.rs.tmpl"),
            include_str!("../templates/codec/method.rs.tmpl"),
            include_str!("../templates/codec/tests.rs.tmpl"),
        ],
    };
    [
        Template {
            path: "Cargo.toml",
            text: CARGO_TOML,
        },
        Template {
            path: "src/lib.rs",
            text: lib,
        },
        Template {
            path: "src/{{module}}.rs",
            text: method,
        },
        Template {
            path: "src/tests.rs",
            text: tests,
        },
    ]
}

/// Runs `cargo xtask new-plugin`.
pub fn run(flags: &flags::NewPlugin) -> Result<()> {
    let (kind, name) = (flags.kind, flags.name.as_str());
    let root = project_root();
    let relative = scaffold(&root, kind, name)?;
    format_crate(&root.join(&relative), name);
    let package = package_name(kind, name);
    println!("created {relative}/ (package {package})");
    if !is_workspace_member(&root.join("Cargo.toml"), kind, name)? {
        println!(
            "note: add \"plugins/{}/*\" (or \"{relative}\") to `members` in Cargo.toml so cargo builds it",
            kind.folder()
        );
    }
    println!("next: cargo test -p {package} && cargo xtask build-plugins && target/debug/fedpref plugins list");
    Ok(())
}

/// Writes the new crate under `root/plugins/<kind>s/<name>/`, refusing to touch an existing
/// folder; returns that folder relative to `root`.
fn scaffold(root: &Path, kind: PluginKind, name: &str) -> Result<String> {
    let type_name = validate_name(name)?;
    let relative = format!("plugins/{}/{name}", kind.folder());
    let dir = root.join(&relative);
    if dir.exists() {
        bail!("{relative} already exists; pick another name or remove it first");
    }
    for (path, text) in render(kind, name, &type_name) {
        let path = dir.join(path);
        let parent = path.parent().context("template path has no parent")?;
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("  {}", path.strip_prefix(root).unwrap_or(&path).display());
    }
    Ok(relative)
}

/// Formats the new crate's sources with rustfmt, so that the generated code matches
/// `cargo fmt` whatever the length of the name; skipped with a note when rustfmt is missing.
fn format_crate(dir: &Path, name: &str) {
    let method = format!("src/{}.rs", module_name(name));
    let files = ["src/lib.rs", method.as_str(), "src/tests.rs"].map(|f| dir.join(f));
    let status = Command::new("rustfmt")
        .args(["--edition", "2021"])
        .args(&files)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        println!("note: rustfmt did not run; format the new crate with `cargo fmt`");
    }
}

/// The package name of a plugin: `fedpref-<kind>-<name>`.
fn package_name(kind: PluginKind, name: &str) -> String {
    format!("fedpref-{}-{name}", kind.as_str())
}

/// The method's module name of a plugin: `name` with underscores for dashes (`my-loss` ->
/// `my_loss`).
fn module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Checks `name` (lowercase letters, digits, single dashes, starting with a letter, and a
/// usable module name) and returns its CamelCase type name (`my-loss` -> `MyLoss`).
fn validate_name(name: &str) -> Result<String> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.split('-').all(|part| !part.is_empty())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!("invalid plugin name {name:?}: use lowercase letters, digits and single dashes, starting with a letter (e.g. my-loss)");
    }
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    if type_name == "Self" {
        bail!("invalid plugin name {name:?}: its type name would be the keyword `Self`");
    }
    let module = module_name(name);
    if KEYWORDS.contains(&module.as_str()) || RESERVED_MODULES.contains(&module.as_str()) {
        bail!("invalid plugin name {name:?}: its module `{module}` would clash with a Rust keyword or a name the crate uses; pick another name");
    }
    Ok(type_name)
}

/// The files of the new crate, with every placeholder filled in.
fn render(kind: PluginKind, name: &str, type_name: &str) -> Vec<(String, String)> {
    let package = package_name(kind, name);
    let fill = |text: &str| {
        text.replace("{{package}}", &package)
            .replace("{{crate}}", &package.replace('-', "_"))
            .replace("{{kind}}", kind.as_str())
            .replace("{{Type}}", type_name)
            .replace("{{module}}", &module_name(name))
            .replace("{{name}}", name)
    };
    templates(kind)
        .into_iter()
        .map(|t| (fill(t.path), fill(t.text)))
        .collect()
}

/// Whether the workspace `members` list names the new crate's folder or a glob over its kind.
fn is_workspace_member(manifest: &Path, kind: PluginKind, name: &str) -> Result<bool> {
    let text =
        fs::read_to_string(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let folder = kind.folder();
    Ok([
        format!("\"plugins/{folder}/*\""),
        format!("\"plugins/{folder}/{name}\""),
        "\"plugins/*/*\"".to_owned(),
    ]
    .iter()
    .any(|entry| text.contains(entry.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [PluginKind; 5] = [
        PluginKind::Loss,
        PluginKind::Aggregator,
        PluginKind::Partitioner,
        PluginKind::Scorer,
        PluginKind::Codec,
    ];

    #[test]
    fn names_are_validated() {
        assert_eq!(validate_name("my-loss").unwrap(), "MyLoss");
        assert_eq!(validate_name("dpo2").unwrap(), "Dpo2");
        for bad in [
            "",
            "My-loss",
            "2dpo",
            "my_loss",
            "my--loss",
            "my-loss-",
            "-x",
            "self",
            "é",
            "match",
            "lib",
            "tests",
            "fedpref-plugin-api",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for kind in KINDS {
            for (path, text) in render(kind, "my-thing", "MyThing") {
                for placeholder in [
                    "{{package}}",
                    "{{crate}}",
                    "{{kind}}",
                    "{{Type}}",
                    "{{module}}",
                    "{{name}}",
                ] {
                    assert!(
                        !text.contains(placeholder),
                        "{kind:?} {path}: {placeholder} left"
                    );
                }
                if path.ends_with(".rs") {
                    assert!(
                        text.starts_with("//!"),
                        "{kind:?} {path} must open with a //! doc"
                    );
                }
            }
        }
    }

    #[test]
    fn crate_has_the_plugin_layout() {
        for kind in KINDS {
            let files = render(kind, "my-thing", "MyThing");
            let file = |p: &str| &files.iter().find(|(path, _)| path == p).unwrap().1;
            let package = format!("fedpref-{}-my-thing", kind.as_str());
            assert!(
                file("Cargo.toml").contains(&format!("name = \"{package}\"")),
                "{kind:?}"
            );
            assert!(
                file("Cargo.toml").contains(r#"crate-type = ["cdylib", "rlib"]"#),
                "{kind:?}"
            );
            let lib = file("src/lib.rs");
            assert!(
                lib.contains("fn plugin() -> Plugin") && lib.contains("export_plugin!(plugin);"),
                "{kind:?}"
            );
            assert!(
                lib.contains("pub mod my_thing;") && lib.contains("mod tests;"),
                "{kind:?}"
            );
            assert!(
                file("src/my_thing.rs").contains("pub struct MyThing"),
                "{kind:?}: the method's module holds the component type"
            );
            assert!(
                file("src/tests.rs").contains("fedpref_plugin_api::{\n    testing::"),
                "{kind:?}: the tests use the shared helpers"
            );
            assert!(
                lib.contains(&format!(".{}(\n        \"my-thing\"", kind.as_str())),
                "{kind:?}"
            );
        }
        let loss = render(PluginKind::Loss, "my-thing", "MyThing");
        assert!(loss
            .iter()
            .any(|(path, text)| path == "src/tests.rs" && text.contains("GradientCheck")));
    }

    #[test]
    fn scaffolds_once_and_refuses_to_overwrite() {
        let root = std::env::temp_dir().join(format!("xtask-new-plugin-{}", std::process::id()));
        let relative = scaffold(&root, PluginKind::Loss, "my-loss").unwrap();
        assert_eq!(relative, "plugins/losses/my-loss");
        let cargo_toml = fs::read_to_string(root.join(&relative).join("Cargo.toml")).unwrap();
        assert!(cargo_toml.contains("name = \"fedpref-loss-my-loss\""));
        assert!(root.join(&relative).join("src/tests.rs").exists());
        assert!(root.join(&relative).join("src/my_loss.rs").exists());
        let err = scaffold(&root, PluginKind::Loss, "my-loss").unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        fs::remove_dir_all(&root).unwrap();
    }
}

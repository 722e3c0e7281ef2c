//! Repository conventions, checked as tests (`cargo test -p xtask`, part of `cargo xtask test`).
//!
//! - every Rust file of the workspace opens with a `//!` doc comment saying what it does;
//! - no ignored or should-panic tests, no `todo!` / `unimplemented!` placeholders (a test that
//!   cannot run is deleted or fixed, a panic is asserted by its message);
//! - no file points at a document outside the repository;
//! - no file in git over 2 MiB (weights and data come from `cargo xtask setup`, never commits);
//! - the plugins, the guides in `docs/` and the `new-plugin` templates name no file outside the
//!   repository;
//! - the host library's modules import only from their own layer and the layers below, in the
//!   order ARCHITECTURE.md's "Layers" section lists once.
//!
//! Files are those git tracks plus untracked ones it does not ignore, so a check fails before
//! the commit that would break CI.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::project_root;

const RUST_ROOTS: [&str; 7] = [
    "core/",
    "model/",
    "rundir/",
    "plugins/",
    "xtask/",
    "tests/",
    "analysis/",
];
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// Files git tracks or would track (not ignored), relative to the project root.
fn repository_files() -> Vec<PathBuf> {
    let output = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(project_root())
        .output()
        .expect("tidy needs git to list the repository's files");
    assert!(
        output.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
        // Deleted but still tracked files are not there to check.
        .filter(|path| project_root().join(path).is_file())
        .collect()
}

fn rust_files() -> Vec<(PathBuf, String)> {
    repository_files()
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .filter(|path| RUST_ROOTS.iter().any(|root| path.starts_with(root)))
        .map(|path| {
            let text = fs::read_to_string(project_root().join(&path))
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (path, text)
        })
        .collect()
}

fn report(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "{} file(s) {what}:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn rust_files_open_with_a_module_doc() {
    let files = rust_files();
    assert!(
        files
            .iter()
            .any(|(p, _)| p == Path::new("xtask/src/tidy.rs")),
        "tidy found no Rust files"
    );
    let problems: Vec<String> = files
        .iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(path, _)| path.display().to_string())
        .collect();
    report(
        &problems,
        "do not start with a `//!` doc comment saying what the file does",
    );
}

#[test]
fn no_skipped_tests_or_placeholders() {
    // Spelled in pieces so that this file does not match itself.
    let forbidden = [
        concat!("#[", "ignore"),
        concat!("#[", "should_panic"),
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
    ];
    let mut problems = Vec::new();
    for (path, text) in rust_files() {
        for (number, line) in text.lines().enumerate() {
            for pattern in forbidden.iter().filter(|p| line.contains(**p)) {
                problems.push(format!("{}:{}: `{pattern}`", path.display(), number + 1));
            }
        }
    }
    report(
        &problems,
        "skip tests or leave placeholders (fix the test, assert the error, or finish the code)",
    );
}

#[test]
fn no_file_points_outside_the_repository() {
    // Notes that live beside the repository are not part of it: a reader has only the
    // repository, so rules are stated, not pointed to. Spelled in pieces so that this file does
    // not match itself.
    let outside = [
        concat!("shared", "/"),
        concat!("STYLE", ".md"),
        concat!("DESIGN", ".md"),
        concat!("PERF-CPU", ".md"),
        concat!("ASSETS", ".md"),
    ];
    let mut problems = Vec::new();
    for path in repository_files() {
        let Ok(text) = fs::read_to_string(project_root().join(&path)) else {
            continue; // binary files
        };
        for (number, line) in text.lines().enumerate() {
            for pattern in outside.iter().filter(|p| line.contains(**p)) {
                problems.push(format!("{}:{}: `{pattern}`", path.display(), number + 1));
            }
        }
    }
    report(
        &problems,
        "point at documents outside the repository (bring what they say into ARCHITECTURE.md or docs/)",
    );
}

#[test]
fn no_large_files_in_git() {
    let problems: Vec<String> = repository_files()
        .into_iter()
        .filter_map(|path| {
            let bytes = fs::metadata(project_root().join(&path)).ok()?.len();
            (bytes > MAX_FILE_BYTES).then(|| format!("{} ({bytes} bytes)", path.display()))
        })
        .collect();
    report(
        &problems,
        "exceed 2 MiB; fetch large assets with `cargo xtask setup` instead of committing them",
    );
}

/// The host library's layers, lowest first, from ARCHITECTURE.md: the numbered lines under
/// `## Layers`, each naming its modules in backticks.
fn architecture_layers() -> Vec<Vec<String>> {
    let text = fs::read_to_string(project_root().join("ARCHITECTURE.md"))
        .expect("reading ARCHITECTURE.md");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Layers"))
        .expect("ARCHITECTURE.md has a `## Layers` section");
    section
        .lines()
        .filter(|line| {
            line.split_once(". ")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        })
        .map(|line| {
            line.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The top-level modules (or root re-exports) a file names after `crate::`, with the line.
fn crate_imports(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(offset) = text[at..].find("crate::") {
        let start = at + offset;
        at = start + "crate::".len();
        // `fedpref_crate::` or `some_crate::` are other names, not this crate.
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let line = text[..start].matches('\n').count() + 1;
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        if text[line_start..start].contains("//") {
            continue; // a doc link or comment, not an import
        }
        let rest = &text[at..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::b, c, D}`: the first segment of each top-level entry.
            let (mut depth, mut entry_start, mut entries) = (0usize, 0usize, Vec::new());
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        entries.push(&group[entry_start..i]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        entries.push(&group[entry_start..i]);
                        entry_start = i + 1;
                    }
                    _ => {}
                }
            }
            for entry in entries {
                let name: String = entry
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push((line, name));
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push((line, name));
        }
    }
    found
}

#[test]
fn host_layers_only_point_down() {
    let layers = architecture_layers();
    assert!(
        layers.len() >= 4,
        "ARCHITECTURE.md lists too few layers: {layers:?}"
    );
    let layer_of = |module: &str| layers.iter().position(|l| l.iter().any(|m| m == module));
    // Root re-exports (`crate::Error`) stand for the module that defines them.
    let reexports = [
        ("Error", "error"),
        ("Result", "error"),
        ("PluginHost", "plugin_host"),
    ];
    let mut problems = Vec::new();
    let mut checked = 0;
    for (path, text) in rust_files() {
        let Ok(inside) = path.strip_prefix("core/src") else {
            continue;
        };
        let module = inside
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|m| m.trim_end_matches(".rs"))
            .unwrap_or_default();
        // The binary's command line and the crate root sit above every layer.
        if matches!(module, "cli" | "main" | "lib") {
            continue;
        }
        let Some(own) = layer_of(module) else {
            problems.push(format!(
                "{}: module `{module}` is in no layer of ARCHITECTURE.md",
                path.display()
            ));
            continue;
        };
        checked += 1;
        for (line, name) in crate_imports(&text) {
            let target = reexports
                .iter()
                .find(|(item, _)| *item == name)
                .map_or(name.as_str(), |(_, module)| module);
            match layer_of(target) {
                Some(layer) if layer > own => problems.push(format!(
                    "{}:{line}: `{module}` (layer {}) imports `crate::{name}` from layer {}",
                    path.display(),
                    own + 1,
                    layer + 1
                )),
                Some(_) => {}
                None => problems.push(format!(
                    "{}:{line}: `crate::{name}` is in no layer of ARCHITECTURE.md",
                    path.display()
                )),
            }
        }
    }
    assert!(
        checked > 20,
        "the layer check found only {checked} host files"
    );
    report(&problems, "import from a layer above their own");
}

#[test]
fn crate_imports_are_read_from_paths_and_groups() {
    let text = "use crate::{\n    data::{tokenize, Dataset},\n    Error, Result,\n};\nlet x = crate::eval::Target;\nuse fedpref_model::Decoder; // see crate::train\nnot_crate::x\n";
    let names: Vec<(usize, String)> = crate_imports(text);
    assert_eq!(
        names,
        [
            (1, "data".to_owned()),
            (1, "Error".to_owned()),
            (1, "Result".to_owned()),
            (5, "eval".to_owned())
        ]
    );
}

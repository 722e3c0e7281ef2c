//! Repository conventions, checked as tests (`cargo test -p xtask`, part of `cargo xtask test`).
//!
//! - every Rust file under `core/`, `plugins/`, `xtask/`, `tests/` and `analysis/` opens with a
//!   `//!` doc comment saying what it does (STYLE.md, "Docs");
//! - no ignored or should-panic tests, no `todo!` / `unimplemented!` placeholders (STYLE.md,
//!   "Tests": a test that cannot run is deleted or fixed, a panic is asserted by its message);
//! - no file in git over 2 MiB (weights and data come from `cargo xtask setup`, never commits).
//!
//! Files are those git tracks plus untracked ones it does not ignore, so a check fails before
//! the commit that would break CI.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::project_root;

const RUST_ROOTS: [&str; 5] = ["core/", "plugins/", "xtask/", "tests/", "analysis/"];
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

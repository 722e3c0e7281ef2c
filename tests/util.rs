//! Locating the built binary and fixtures, and running the CLI.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

/// The directory holding this test binary's profile outputs (`target/debug`), where `cargo
/// build --workspace` put `fedpref` and the plugin libraries.
pub fn profile_dir() -> PathBuf {
    // The test executable is target/<profile>/deps/integration-<hash>.
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps")
        .to_path_buf()
}

/// The `fedpref` binary, which must have been built.
pub fn fedpref_bin() -> PathBuf {
    let bin = profile_dir().join(format!("fedpref{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo xtask test`",
        bin.display()
    );
    bin
}

/// A fixture plugin library built by `cargo xtask test` (tests/fixtures).
pub fn fixture(name: &str) -> PathBuf {
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name,
        std::env::consts::DLL_SUFFIX
    );
    let path = repo_root().join("target/fixtures/debug").join(file);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

/// The result of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `fedpref args...` with a clean plugin path.
pub fn fedpref(args: &[&str]) -> Run {
    Command::new(fedpref_bin())
        .args(args)
        .env_remove("FEDPREF_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .output()
        .expect("fedpref runs")
        .into()
}

/// The `error: ...` lines of stderr.
pub fn error_lines(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect()
}

/// Copies `files` into a fresh temporary directory.
pub fn dir_with(files: &[&Path]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for file in files {
        std::fs::copy(
            file,
            dir.path().join(file.file_name().expect("a file name")),
        )
        .expect("copy fixture");
    }
    dir
}

/// Writes a tiny random model (`dir/model`) and `pairs` preference pairs about numbers
/// (`dir/pairs.jsonl`): the scratch experiment of the eval and report tests.
pub fn write_tiny_model_and_pairs(dir: &Path, pairs: usize) {
    fedpref_model::testing::write_tiny_model(&dir.join("model"), 11).expect("tiny model");
    let rows: Vec<String> = (0..pairs)
        .map(|i| {
            serde_json::json!({
                "prompt": format!("Say something about {i}."),
                "chosen": format!("Number {i} is fine."),
                "rejected": format!("{i} {i} {i}"),
            })
            .to_string()
        })
        .collect();
    std::fs::write(dir.join("pairs.jsonl"), rows.join("\n")).expect("write data");
}

/// Copies the directory tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory copy");
    for entry in std::fs::read_dir(from).expect("read source directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy source file");
        }
    }
}

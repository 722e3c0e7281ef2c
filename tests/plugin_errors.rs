//! Each way a plugin can be wrong gives exactly one readable error line naming the file.

use std::{path::Path, process::Command};

use crate::util::{copy_dir, dir_with, error_lines, fedpref, fixture, repo_root, Run};

fn single_error(run: &Run) -> String {
    let errors = error_lines(run);
    assert_eq!(
        errors.len(),
        1,
        "expected one error line, stderr was:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked at"),
        "a panic message leaked:\n{}",
        run.stderr
    );
    errors[0].to_owned()
}

#[test]
fn a_panic_inside_a_plugin_is_an_error() {
    let dir = dir_with(&[&fixture("fedpref_fixture_panicking")]);
    let plugin_dir = dir.path().to_str().expect("utf-8 path");
    let input = dir.path().join("batch.json");
    std::fs::write(&input, r#"{"logp_policy": [-1.0], "labels": ["chosen"]}"#)
        .expect("write input");
    let input = input.to_str().expect("utf-8 path");

    let run = fedpref(&[
        "--plugin-dir",
        plugin_dir,
        "loss",
        "panicky",
        "--input",
        input,
    ]);
    assert_eq!(run.code, 1);
    let error = single_error(&run);
    assert!(error.contains("loss \"panicky\""), "{error}");
    assert!(error.contains("libfedpref_fixture_panicking"), "{error}");
    assert!(
        error.contains("panicked: deliberate panic on a batch of 1"),
        "{error}"
    );

    let run = fedpref(&[
        "--plugin-dir",
        plugin_dir,
        "loss",
        "broken",
        "--input",
        input,
    ]);
    assert_eq!(run.code, 1);
    let error = single_error(&run);
    assert!(
        error.contains("panicked: deliberate panic in a constructor"),
        "{error}"
    );
}

#[test]
fn a_library_without_root_module_is_not_a_plugin() {
    let path = fixture("fedpref_fixture_not_a_plugin");
    let run = fedpref(&["plugins", "check", path.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 1);
    let error = single_error(&run);
    assert!(
        error.contains(path.to_str().expect("utf-8 path")),
        "{error}"
    );
    assert!(
        error.contains("not a fedpref plugin (it exports no abi_stable root module)"),
        "{error}"
    );
}

#[test]
fn a_file_that_is_no_library_is_not_a_plugin() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("libgarbage.so");
    std::fs::write(&path, b"\x7fELF but not really a shared object").expect("write garbage");
    let run = fedpref(&["plugins", "check", path.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 1);
    let error = single_error(&run);
    assert!(
        error.contains("libgarbage.so: not a fedpref plugin (cannot be opened as a shared library"),
        "{error}"
    );
}

#[test]
fn a_non_plugin_in_a_plugin_directory_is_skipped_with_a_warning() {
    let dir = dir_with(&[&fixture("fedpref_fixture_not_a_plugin")]);
    let run = fedpref(&[
        "--plugin-dir",
        dir.path().to_str().expect("utf-8 path"),
        "plugins",
        "list",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("skipping") && run.stderr.contains("not a fedpref plugin"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains(" dpo "), "{}", run.stdout);
}

#[test]
fn two_plugins_providing_one_name_is_an_error() {
    let dir = dir_with(&[&fixture("fedpref_fixture_duplicate")]);
    let run = fedpref(&[
        "--plugin-dir",
        dir.path().to_str().expect("utf-8 path"),
        "plugins",
        "list",
    ]);
    assert_eq!(run.code, 1);
    let error = single_error(&run);
    assert!(error.contains("loss \"dpo\" is provided twice"), "{error}");
    assert!(
        error.contains("libfedpref_loss_dpo") && error.contains("libfedpref_fixture_duplicate"),
        "{error}"
    );
}

/// Builds a copy of the plugin API changed by `edit`, and a plugin against it, in a scratch
/// workspace that shares target/fixtures (so abi_stable is compiled once). Returns the library.
fn plugin_against_modified_api(scratch: &Path, edit: impl Fn(&Path)) -> std::path::PathBuf {
    let root = repo_root();
    let api = scratch.join("api");
    copy_dir(&root.join("plugins/api/src"), &api.join("src"));
    let version = api_version(&root);
    std::fs::write(
        api.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fedpref-plugin-api\"\nversion = \"{version}\"\nedition = \"2021\"\n\n\
             [dependencies]\nabi_stable = \"0.11.3\"\nserde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\"\n"
        ),
    )
    .expect("write api manifest");
    edit(&api);

    let plugin = scratch.join("plugin");
    std::fs::create_dir_all(plugin.join("src")).expect("create plugin");
    std::fs::write(
        plugin.join("Cargo.toml"),
        "[package]\nname = \"fedpref-fixture-modified-api\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\nabi_stable = \"0.11.3\"\nfedpref-plugin-api = { path = \"../api\" }\n",
    )
    .expect("write plugin manifest");
    let source = std::fs::read_to_string(root.join("tests/fixtures/duplicate/src/lib.rs"))
        .expect("fixture source");
    std::fs::write(
        plugin.join("src/lib.rs"),
        source.replace("\"dpo\"", "\"modified\""),
    )
    .expect("write plugin");
    std::fs::write(
        scratch.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"api\", \"plugin\"]\n",
    )
    .expect("write workspace");
    std::fs::copy(
        root.join("tests/fixtures/Cargo.lock"),
        scratch.join("Cargo.lock"),
    )
    .expect("copy lock file");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target_dir = root.join("target/fixtures");
    let status = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(scratch.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the modified-API plugin failed");
    target_dir.join("debug").join(format!(
        "{}fedpref_fixture_modified_api{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

fn api_version(root: &Path) -> String {
    let manifest =
        std::fs::read_to_string(root.join("plugins/api/Cargo.toml")).expect("api manifest");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("version = "))
        .expect("the api crate states its version");
    line.trim_start_matches("version = ")
        .trim_matches('"')
        .to_owned()
}

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read source");
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).expect("write source");
}

#[test]
fn plugins_built_against_another_api_are_refused() {
    let scratch = tempfile::tempdir().expect("temporary directory");

    let version = api_version(&repo_root());
    let mut parts: Vec<u64> = version
        .split('.')
        .map(|p| p.parse().expect("numeric version"))
        .collect();
    parts[1] += 1;
    parts[2] = 0;
    let bumped = parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let newer = plugin_against_modified_api(&scratch.path().join("version"), |api| {
        replace_in(
            &api.join("Cargo.toml"),
            &format!("version = \"{version}\""),
            &format!("version = \"{bumped}\""),
        );
    });
    let run = fedpref(&["plugins", "check", newer.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 1);
    let error = single_error(&run);
    let expected = format!(
        "built against an incompatible plugin API (plugin API {bumped}, host API {version})"
    );
    assert!(error.contains(&expected), "{error}");

    // Same version number, a metric's value narrowed from f64 to f32.
    let changed_layout = plugin_against_modified_api(&scratch.path().join("layout"), |api| {
        let metric = api.join("src/metric.rs");
        replace_in(&metric, "pub value: f64,", "pub value: f32,");
        // Callers keep passing f64; the constructor narrows.
        replace_in(
            &metric,
            "            value,\n",
            "            value: value as f32,\n",
        );
        replace_in(
            &api.join("src/testing/results.rs"),
            "        .value\n",
            "        .value as f64\n",
        );
    });
    let run = fedpref(&[
        "plugins",
        "check",
        changed_layout.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(run.code, 1);
    let error = single_error(&run);
    assert!(error.contains("fedpref_fixture_modified_api"), "{error}");
    assert!(
        error.contains("built against an incompatible plugin API (type layouts differ: `Metric.value`: mismatched type, expected f64, found f32)"),
        "{error}"
    );

    // Same types, a newer minor version of the API.
}

//! The real plugins as a user meets them: `plugins list`, `plugins check`, `loss`.

use crate::util::{error_lines, fedpref, profile_dir};

fn lib(name: &str) -> String {
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name,
        std::env::consts::DLL_SUFFIX
    );
    profile_dir().join(file).display().to_string()
}

#[test]
fn list_shows_every_loss_each_from_its_own_library() {
    let run = fedpref(&["plugins", "list", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listing: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON listing");
    let components = listing["components"].as_array().expect("components");
    let file_of = |name: &str| -> String {
        let entry = components
            .iter()
            .find(|c| c["kind"] == "loss" && c["name"] == name)
            .unwrap_or_else(|| panic!("loss {name} missing from {listing}"));
        entry["file"].as_str().expect("file").to_owned()
    };
    assert_eq!(file_of("dpo"), lib("fedpref_loss_dpo"));
    assert_eq!(file_of("kto"), lib("fedpref_loss_kto"));
    assert_eq!(file_of("ktor"), lib("fedpref_loss_kto"));
    assert_eq!(file_of("simpo"), lib("fedpref_loss_simpo"));
    let data_of = |name: &str| {
        components
            .iter()
            .find(|c| c["name"] == name)
            .expect("component")["data_needs"]["data"]
            .clone()
    };
    assert_eq!(data_of("dpo"), "paired");
    assert_eq!(data_of("kto"), "unpaired");
    assert_eq!(data_of("ktor"), "redistributed");
}

#[test]
fn list_prints_a_table() {
    let run = fedpref(&["plugins", "list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let header = run.stdout.lines().next().expect("a header line");
    for column in ["KIND", "NAME", "VERSION", "DATA NEEDS", "FILE"] {
        assert!(header.contains(column), "{header}");
    }
    let ktor = run
        .stdout
        .lines()
        .find(|l| l.starts_with("loss") && l.contains(" ktor "))
        .expect("ktor row");
    assert!(
        ktor.contains("redistributed, reference, kl-batch"),
        "{ktor}"
    );
}

#[test]
fn check_reports_a_good_plugin() {
    let path = lib("fedpref_loss_kto");
    let run = fedpref(&["plugins", "check", &path]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("ok, plugin fedpref-loss-kto"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("loss ktor"), "{}", run.stdout);
}

/// `fedpref loss dpo` against the closed form of the sigmoid DPO loss on one pair.
#[test]
fn loss_command_evaluates_dpo() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("batch.json");
    std::fs::write(
        &input,
        r#"{"logp_policy": [-10.0, -12.0], "logp_ref": [-11.0, -11.5],
            "labels": ["chosen", "rejected"], "pair": [1, 0], "n_tokens": [5, 6]}"#,
    )
    .expect("write input");
    let run = fedpref(&[
        "loss",
        "dpo",
        "--input",
        input.to_str().expect("utf-8 path"),
        "--params",
        r#"{"beta": 0.5}"#,
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let output: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON output");
    // h = (-10 + 11) - (-12 + 11.5) = 1.5; loss = -log sigmoid(0.5 * 1.5) = softplus(-0.75).
    let z: f64 = 0.75;
    let expected_loss = (1.0 + (-z).exp()).ln();
    let loss = output["loss"].as_f64().expect("loss");
    assert!(
        (loss - expected_loss).abs() < 1e-6,
        "{loss} vs {expected_loss}"
    );
    // d loss / d logp_chosen = -beta * sigmoid(-z); the rejected gradient is its negative.
    let g = -0.5 / (1.0 + z.exp());
    let grads = output["grad_logp_policy"].as_array().expect("gradients");
    assert!(
        (grads[0].as_f64().expect("number") - g).abs() < 1e-6,
        "{grads:?}"
    );
    assert!(
        (grads[1].as_f64().expect("number") + g).abs() < 1e-6,
        "{grads:?}"
    );
    assert_eq!(output["metrics"]["rewards/accuracies"], 1.0);
}

#[test]
fn unknown_loss_suggests_the_closest_name() {
    let run = fedpref(&["loss", "dpoo", "--input", "-"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = error_lines(&run);
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains(r#"no loss named "dpoo"; did you mean "dpo"?"#),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("available: dpo, kto, ktor, simpo"),
        "{}",
        errors[0]
    );
}

#[test]
fn bad_params_are_a_usage_error() {
    let run = fedpref(&[
        "loss",
        "dpo",
        "--input",
        "-",
        "--params",
        r#"{"variant": "sigmod"}"#,
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = error_lines(&run);
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(errors[0].contains("sigmod"), "{}", errors[0]);
    assert!(errors[0].contains("sigmoid"), "{}", errors[0]);
}

#[test]
fn malformed_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let input = dir.path().join("broken.json");
    std::fs::write(&input, "{\"logp_policy\": [1.0,\n  oops]}").expect("write input");
    let run = fedpref(&[
        "loss",
        "dpo",
        "--input",
        input.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = error_lines(&run);
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains("broken.json") && errors[0].contains("line 2"),
        "{}",
        errors[0]
    );
}

/// Every shipped config parses, validates and names only components that exist.
#[test]
fn every_shipped_config_is_valid() {
    let root = crate::util::repo_root();
    let mut configs = Vec::new();
    let mut dirs = vec![root.join("configs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("configs directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                configs.push(path);
            }
        }
    }
    assert!(configs.len() >= 2, "{configs:?}");
    for config in configs {
        let run = fedpref(&["run", config.to_str().expect("utf-8 path"), "--dry-run"]);
        assert_eq!(run.code, 0, "{}: {}", config.display(), run.stderr);
        assert!(run.stdout.contains("run(s) in"), "{}", run.stdout);
    }
}

#[test]
fn config_errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[federation]\nclientz = 3\n").expect("write config");
    let run = fedpref(&["run", config.to_str().expect("utf-8 path"), "--dry-run"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = error_lines(&run);
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains("bad.toml") && errors[0].contains("clientz"),
        "{}",
        errors[0]
    );

    let run = fedpref(&[
        "run",
        config.to_str().expect("utf-8 path"),
        "--dry-run",
        "--set",
        "federation.clients_per_round=0",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);

    std::fs::write(&config, "[experiment]\nmethods = [\"dpoo\"]\n").expect("write config");
    let run = fedpref(&["run", config.to_str().expect("utf-8 path"), "--dry-run"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("did you mean \"dpo\""),
        "{}",
        run.stderr
    );
}

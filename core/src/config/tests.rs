//! Loading a config: file < environment < `--set`, unknown keys and bad values refused with the
//! key's name, overrides parsed as TOML.

use super::*;

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("experiment.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn error(text: &str, overrides: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write(dir.path(), text);
    let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
    load(&path, &overrides)
        .expect_err("an invalid config")
        .to_string()
}

#[test]
fn the_file_overrides_defaults_and_set_overrides_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write(
        dir.path(),
        "[experiment]\nname = \"mine\"\nmethods = [\"kto\"]\n[training]\nlr = 2e-4\n",
    );
    let config = load(
        &path,
        &[
            "training.lr=5e-4".to_owned(),
            "experiment.seeds=[1, 2]".to_owned(),
            "lora.targets=[\"q_proj\"]".to_owned(),
        ],
    )
    .expect("load");
    assert_eq!(config.experiment.name, "mine");
    assert_eq!(config.experiment.methods, ["kto"]);
    assert_eq!(config.experiment.seeds, [1, 2]);
    assert_eq!(config.training.lr, 5e-4);
    assert_eq!(config.lora.targets, ["q_proj"]);
    assert_eq!(
        config.training.batch_size,
        TrainingSection::default().batch_size
    );
}

#[test]
fn a_set_value_that_is_not_toml_is_a_string() {
    let (key, value) = parse_override("partition.name=dirichlet").expect("parse");
    assert_eq!(key, "partition");
    assert_eq!(value.to_string(), "{ name = \"dirichlet\" }");
    assert!(parse_override("no-equals-sign").is_err());
    assert!(parse_override("a..b=1").is_err());
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let unknown = error("[training]\nlearning_rate = 1e-4\n", &[]);
    assert!(unknown.contains("learning_rate"), "{unknown}");
    let wrong_type = error("[federation]\nrounds = \"many\"\n", &[]);
    assert!(wrong_type.contains("rounds"), "{wrong_type}");
    for (override_, key) in [
        (
            "federation.clients_per_round=20",
            "federation.clients_per_round",
        ),
        ("training.lr=0", "training.lr"),
        ("lora.dropout=1.5", "lora"),
        ("experiment.name=\"a/b\"", "experiment.name"),
        ("experiment.seeds=[]", "experiment.seeds"),
        ("model.device=\"tpu\"", "model.device"),
        ("federation.dropout=1.0", "federation.dropout"),
        ("training.local_steps=\"epochs:-1\"", "local_steps"),
        // Values that pass a plain comparison but break a run later.
        ("training.lr=inf", "training.lr = inf"),
        ("training.max_grad_norm=nan", "training.max_grad_norm = NaN"),
        ("training.max_loss=-inf", "training.max_loss"),
        ("lora.alpha=nan", "lora.alpha"),
        (
            "federation.deadline_seconds=1e30",
            "federation.deadline_seconds",
        ),
        ("training.local_steps=\"epochs:1e300\"", "at most"),
        ("experiment.name=\"..\"", "experiment.name"),
        ("experiment.name=\".\"", "experiment.name"),
    ] {
        let message = error("", &[override_]);
        assert!(message.contains(key), "{override_}: {message}");
        assert!(
            message.contains("experiment.toml"),
            "{override_}: {message}"
        );
    }
}

#[test]
fn a_missing_config_file_says_so() {
    let message = load(Path::new("/nonexistent/fedpref.toml"), &[])
        .expect_err("missing")
        .to_string();
    assert!(
        message.contains("/nonexistent/fedpref.toml") && message.contains("no such config file"),
        "{message}"
    );
}

#[test]
fn relative_paths_resolve_against_a_base() {
    assert_eq!(
        resolve_path(Path::new("/work"), Path::new("data/x.json")),
        PathBuf::from("/work/data/x.json")
    );
    assert_eq!(
        resolve_path(Path::new("/work"), Path::new("/abs/x.json")),
        PathBuf::from("/abs/x.json")
    );
}

#[test]
fn only_environment_variables_that_name_a_section_are_config() {
    let sections = section_names();
    for section in ["experiment", "model", "training", "eval", "aggregators"] {
        assert!(sections.iter().any(|s| s == section), "{sections:?}");
    }
    assert!(names_a_section("training.lr", &sections));
    assert!(names_a_section("TRAINING.LR", &sections));
    assert!(!names_a_section("plugin_path", &sections));
    assert!(!names_a_section("require_assets", &sections));
    assert!(!names_a_section("judge_model", &sections));
}

#[test]
fn client_level_privacy_fits_its_budget_under_either_sampling() {
    // Fixed-size sampling is accounted at half the noise multiplier (replace-one neighbours),
    // so a budget that Poisson sampling meets can refuse it.
    let budget = "[federation]\nclients = 10\nclients_per_round = 2\nrounds = 20\n\
                  [privacy]\nmode = \"client\"\nnoise_multiplier = 1.5\nepsilon_budget = 5.0\n";
    let fixed = error(budget, &[]);
    assert!(fixed.contains("rounds fit the budget"), "{fixed}");
    let poisson = budget.replace("rounds = 20\n", "rounds = 20\nsampling = \"poisson\"\n");
    let dir = tempfile::tempdir().expect("temporary directory");
    load(&write(dir.path(), &poisson), &[]).expect("Poisson sampling fits the budget");
    let over = error(
        "[federation]\nclients = 10\nclients_per_round = 2\nrounds = 50\nsampling = \"poisson\"\n\
         [privacy]\nmode = \"client\"\nnoise_multiplier = 1.0\nepsilon_budget = 2.0\n",
        &[],
    );
    assert!(
        over.contains("privacy.epsilon_budget = 2") && over.contains("rounds fit the budget"),
        "{over}"
    );
    let no_noise = error(
        "[federation]\nsampling = \"poisson\"\n[privacy]\nmode = \"client\"\nnoise_multiplier = 0.0\n",
        &[],
    );
    assert!(
        no_noise.contains("privacy.noise_multiplier = 0"),
        "{no_noise}"
    );
}

#[test]
fn adaptive_clipping_is_checked_before_any_work() {
    let base = "[federation]\nclients = 10\nclients_per_round = 4\n[privacy]\n";
    let example = error(
        &format!("{base}mode = \"example\"\ntarget_quantile = 0.5\n"),
        &[],
    );
    assert!(
        example.contains("adaptive clipping is for privacy.mode = \"client\""),
        "{example}"
    );
    let quantile = error(
        &format!("{base}mode = \"client\"\ntarget_quantile = 1.5\n"),
        &[],
    );
    assert!(
        quantile.contains("privacy.target_quantile = 1.5 must be in (0, 1)"),
        "{quantile}"
    );
    // 4 clients a round: sigma_b defaults to 0.2, below z / 2 = 0.5.
    let starved = error(
        &format!("{base}mode = \"client\"\ntarget_quantile = 0.5\n"),
        &[],
    );
    assert!(
        starved.contains("privacy.quantile_noise = 0.2 (sigma_b) must exceed"),
        "{starved}"
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let fits = format!("{base}mode = \"client\"\ntarget_quantile = 0.5\nquantile_noise = 1.0\n");
    load(&write(dir.path(), &fits), &[]).expect("sigma_b = 1 leaves noise for the updates");
}

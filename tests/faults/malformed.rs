//! Malformed inputs of every kind the host reads — preference data, a Hugging Face model folder
//! (config, tokenizer, chat template, safetensors), a GGUF file, an experiment config, a
//! plugin library, and the files of a finished run directory — made from valid ones by
//! truncation, bit flips, huge or zero sizes and wrong types. Each must end in success (the
//! damage left it valid) or an error that names the damaged file; never a panic, an abort or
//! a hang.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{record_counts, spawn, wait, Ending, Experiment, Rng, LIMIT};
use crate::util::{copy_dir, profile_dir};

/// One damaged input and the command that reads it.
struct Case {
    label: String,
    args: Vec<String>,
    /// What the error must mention: the damaged file's name or path.
    names: Vec<String>,
}

/// How a case ended.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Exit 0: the damage left the input valid.
    Accepted,
    /// A non-zero exit whose error names the file.
    Located,
    /// A non-zero exit whose error does not.
    Unlocated(String),
    /// A Rust panic.
    Panicked(String),
    /// Killed by a signal: an abort on allocation, a segfault.
    Aborted(String),
    /// Still running at the limit.
    Hung,
}

fn judge(case: &Case) -> Verdict {
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    match wait(spawn(&args), LIMIT) {
        Ending::Hung => Verdict::Hung,
        Ending::Signalled(what) => Verdict::Aborted(what),
        Ending::Exited(_, stderr) if stderr.contains("panicked at") => Verdict::Panicked(stderr),
        Ending::Exited(101, stderr) => Verdict::Panicked(stderr),
        Ending::Exited(0, _) => Verdict::Accepted,
        Ending::Exited(_, stderr) => {
            let errors: String = stderr
                .lines()
                .skip_while(|l| !l.starts_with("error"))
                .collect::<Vec<_>>()
                .join("\n");
            if case.names.iter().any(|n| errors.contains(n.as_str())) {
                Verdict::Located
            } else {
                Verdict::Unlocated(stderr)
            }
        }
    }
}

/// Writes `bytes` as `dir/name` (creating `dir`); returns the path.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("case folder");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write case");
    path
}

fn truncated(bytes: &[u8], fraction: f64) -> Vec<u8> {
    bytes[..(bytes.len() as f64 * fraction) as usize].to_vec()
}

/// `bytes` with one bit flipped at a random position in `range` (clamped to the data).
fn flipped(bytes: &[u8], rng: &mut Rng, range: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let end = range.end.min(out.len());
    let at = range.start + rng.below(end - range.start);
    out[at] ^= 1 << rng.below(8);
    out
}

/// `text` with its first `from` replaced by `to` (which must occur).
fn replaced(text: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(text.contains(from), "{from:?} is not in the valid input");
    text.replacen(from, to, 1).into_bytes()
}

/// Where the damaged file's path goes in a case's command.
const FILE: &str = "{file}";

/// One case per damaged copy of a single file: each written to `cases/<kind>/` under
/// `file_name(i)` and read by `command`, whose [`FILE`] is replaced by its path.
fn file_cases(
    ex: &Experiment,
    kind: &str,
    file_name: impl Fn(usize) -> String,
    command: &[&str],
    inputs: Vec<(&str, Vec<u8>)>,
) -> Vec<Case> {
    let dir = ex.path().join("cases").join(kind.to_lowercase());
    inputs
        .into_iter()
        .enumerate()
        .map(|(i, (label, bytes))| {
            let path = write(&dir, &file_name(i), &bytes).display().to_string();
            Case {
                label: format!("{kind}: {label}"),
                args: command
                    .iter()
                    .map(|a| {
                        if *a == FILE {
                            path.clone()
                        } else {
                            (*a).to_owned()
                        }
                    })
                    .collect(),
                names: vec![path],
            }
        })
        .collect()
}

/// Damaged preference data, read by `fedpref data inspect`.
fn data_cases(ex: &Experiment, rng: &mut Rng) -> Vec<Case> {
    let valid = std::fs::read(ex.path().join("pairs.jsonl")).expect("pairs");
    let text = String::from_utf8(valid.clone()).expect("utf-8");
    let mut inputs: Vec<(&str, Vec<u8>)> = vec![
        ("truncated to 10%", truncated(&valid, 0.1)),
        ("truncated to 50%", truncated(&valid, 0.5)),
        ("truncated to 90%", truncated(&valid, 0.9)),
        (
            "a number for an answer",
            replaced(&text, "\"chosen\":\"Number 0 is fine.\"", "\"chosen\":5"),
        ),
        (
            "a null prompt",
            replaced(
                &text,
                "\"prompt\":\"Say something about 1.\"",
                "\"prompt\":null",
            ),
        ),
        (
            "a duplicate key",
            replaced(
                &text,
                "\"prompt\":\"Say something about 2.\"",
                "\"prompt\":\"a\",\"prompt\":\"b\"",
            ),
        ),
        ("empty", Vec::new()),
        (
            "invalid UTF-8",
            [&valid[..40], &[0xff, 0xfe, 0xfd], &valid[40..]].concat(),
        ),
        (
            "nested 100000 deep",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        (
            "an unterminated array",
            b"[{\"prompt\": \"a\", \"chosen\": ".to_vec(),
        ),
        (
            "binary noise",
            (0..4096).map(|_| rng.below(256) as u8).collect(),
        ),
    ];
    for _ in 0..5 {
        inputs.push(("a flipped bit", flipped(&valid, rng, 0..valid.len())));
    }
    file_cases(
        ex,
        "data",
        |i| format!("{i:02}.jsonl"),
        &["data", "inspect", FILE],
        inputs,
    )
}

/// A damaged Hugging Face model folder, read by `fedpref logprobs` with a chat prompt.
fn model_cases(ex: &Experiment, rng: &mut Rng) -> Vec<Case> {
    let model = ex.path().join("model");
    let read = |name: &str| std::fs::read(model.join(name)).expect("model file");
    let text = |name: &str| String::from_utf8(read(name)).expect("utf-8");
    let config = text("config.json");
    let tokenizer = read("tokenizer.json");
    let tokenizer_config = text("tokenizer_config.json");
    let weights = read("model.safetensors");
    let header_len = u64::from_le_bytes(weights[..8].try_into().expect("8 bytes")) as usize;
    let with_key = |key: &str, value: serde_json::Value| {
        let mut parsed: serde_json::Value = serde_json::from_str(&config).expect("config.json");
        match value {
            serde_json::Value::Null => parsed.as_object_mut().expect("an object").remove(key),
            value => parsed
                .as_object_mut()
                .expect("an object")
                .insert(key.to_owned(), value),
        };
        parsed.to_string().into_bytes()
    };
    let template = |t: &str| {
        let mut value: serde_json::Value =
            serde_json::from_str(&tokenizer_config).expect("tokenizer_config");
        value["chat_template"] = serde_json::json!(t);
        value.to_string().into_bytes()
    };
    let mut inputs: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "config.json",
            "truncated",
            truncated(config.as_bytes(), 0.5),
        ),
        (
            "config.json",
            "a string for a size",
            with_key("hidden_size", json!("big")),
        ),
        (
            "config.json",
            "zero heads",
            with_key("num_attention_heads", json!(0)),
        ),
        (
            "config.json",
            "zero head_dim",
            with_key("head_dim", json!(0)),
        ),
        (
            "config.json",
            "a vocabulary of 10^12",
            with_key("vocab_size", json!(1_000_000_000_000u64)),
        ),
        (
            "config.json",
            "10^9 layers",
            with_key("num_hidden_layers", json!(1_000_000_000)),
        ),
        (
            "config.json",
            "a context of 10^15",
            with_key("max_position_embeddings", json!(1_000_000_000_000_000u64)),
        ),
        (
            "config.json",
            "heads that do not divide the width",
            with_key("hidden_size", json!(30)),
        ),
        (
            "config.json",
            "zero intermediate size",
            with_key("intermediate_size", json!(0)),
        ),
        (
            "config.json",
            "3 KV heads for 4 heads",
            with_key("num_key_value_heads", json!(3)),
        ),
        (
            "config.json",
            "a negative epsilon",
            with_key("rms_norm_eps", json!(-1.0)),
        ),
        (
            "config.json",
            "a zero RoPE base",
            with_key("rope_theta", json!(0.0)),
        ),
        (
            "config.json",
            "no hidden_size",
            with_key("hidden_size", serde_json::Value::Null),
        ),
        (
            "config.json",
            "an EOS id beyond the vocabulary",
            with_key("eos_token_id", json!(1_000_000_000)),
        ),
        ("tokenizer.json", "truncated", truncated(&tokenizer, 0.5)),
        (
            "tokenizer.json",
            "a flipped bit",
            flipped(&tokenizer, rng, 0..tokenizer.len()),
        ),
        (
            "tokenizer.json",
            "a flipped bit",
            flipped(&tokenizer, rng, 0..tokenizer.len()),
        ),
        (
            "tokenizer_config.json",
            "a template that loops 10^9 times",
            template("{% for i in range(1000000000) %}{{ i }}{% endfor %}"),
        ),
        (
            "tokenizer_config.json",
            "a template that recurses",
            template("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
        ),
        (
            "tokenizer_config.json",
            "a template that loops 10^10 times",
            template(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            ),
        ),
        (
            "tokenizer_config.json",
            "a template that does not parse",
            template("{% for m in messages %}{{ m.content "),
        ),
        (
            "tokenizer_config.json",
            "a number for a template",
            replaced(
                &tokenizer_config,
                "\"chat_template\": ",
                "\"chat_template\": 5, \"x\": ",
            ),
        ),
        (
            "model.safetensors",
            "truncated to half",
            truncated(&weights, 0.5),
        ),
        (
            "model.safetensors",
            "truncated to 8 bytes",
            weights[..8].to_vec(),
        ),
        (
            "model.safetensors",
            "a header length of 2^64 - 1",
            [&u64::MAX.to_le_bytes()[..], &weights[8..]].concat(),
        ),
        (
            "model.safetensors",
            "a header length of 2^40",
            [&(1u64 << 40).to_le_bytes()[..], &weights[8..]].concat(),
        ),
    ];
    for _ in 0..4 {
        inputs.push((
            "model.safetensors",
            "a flipped bit in the header",
            flipped(&weights, rng, 8..8 + header_len),
        ));
    }
    inputs
        .into_iter()
        .enumerate()
        .map(|(i, (file, label, bytes))| {
            let dir = ex.path().join(format!("cases/model-{i:02}"));
            copy_dir(&model, &dir);
            write(&dir, file, &bytes);
            Case {
                label: format!("model {file}: {label}"),
                args: [
                    "logprobs",
                    "--model",
                    &dir.display().to_string(),
                    "--prompt",
                    "Say hi.",
                    "--answer",
                    "Hi.",
                ]
                .map(String::from)
                .to_vec(),
                names: vec![file.to_owned(), dir.display().to_string()],
            }
        })
        .collect()
}

/// A damaged GGUF file, read by `fedpref logprobs`.
fn gguf_cases(ex: &Experiment, rng: &mut Rng) -> Vec<Case> {
    let valid_path = ex.path().join("tiny.gguf");
    fedpref_model::testing::write_tiny_gguf(
        &valid_path,
        &fedpref_model::testing::tiny_config(),
        5,
        true,
    )
    .expect("tiny GGUF");
    let valid = std::fs::read(&valid_path).expect("GGUF");
    let mut inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("the magic alone", valid[..4].to_vec()),
        ("truncated to 10%", truncated(&valid, 0.1)),
        ("truncated to 50%", truncated(&valid, 0.5)),
        ("truncated to 90%", truncated(&valid, 0.9)),
    ];
    for _ in 0..8 {
        inputs.push((
            "a flipped bit in the metadata",
            flipped(&valid, rng, 4..2048),
        ));
    }
    let command = ["logprobs", "--model", FILE, "--text", "hello"];
    file_cases(ex, "GGUF", |i| format!("{i:02}.gguf"), &command, inputs)
}

/// A damaged experiment config, read by `fedpref run --dry-run`.
fn config_cases(ex: &Experiment, rng: &mut Rng) -> Vec<Case> {
    let valid = std::fs::read_to_string(ex.config("dry", r#"["dpo"]"#, "")).expect("config");
    let mut inputs: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", truncated(valid.as_bytes(), 0.5)),
        (
            "a string for a count",
            replaced(&valid, "rounds = 4", "rounds = \"four\""),
        ),
        (
            "a NaN learning rate",
            replaced(&valid, "lr = 1e-2", "lr = nan"),
        ),
        (
            "a deadline of 10^30 s",
            replaced(
                &valid,
                "eval_every = 1",
                "eval_every = 1\ndeadline_seconds = 1e30",
            ),
        ),
        (
            "a name of ..",
            replaced(&valid, "name = \"faults\"", "name = \"..\""),
        ),
        (
            "a name with a slash",
            replaced(&valid, "name = \"faults\"", "name = \"a/b\""),
        ),
        (
            "an unknown key",
            replaced(&valid, "rounds = 4", "rounds = 4\nroundz = 5"),
        ),
        (
            "a negative client count",
            replaced(&valid, "clients = 3", "clients = -1"),
        ),
        (
            "a client count of 10^20",
            replaced(&valid, "clients = 3", "clients = 100000000000000000000"),
        ),
        (
            "10^300 epochs",
            replaced(&valid, "local_steps = 2", "local_steps = \"epochs:1e300\""),
        ),
        ("not TOML", b"[experiment\nname = ".to_vec()),
    ];
    for _ in 0..4 {
        inputs.push((
            "a flipped bit",
            flipped(valid.as_bytes(), rng, 0..valid.len()),
        ));
    }
    let command = ["run", FILE, "--dry-run"];
    file_cases(ex, "config", |i| format!("{i:02}.toml"), &command, inputs)
}

/// A damaged plugin library, read by `fedpref plugins check`. Only its ELF header and length
/// are damaged: flipped code would run, which no loader can guard against.
fn plugin_cases(ex: &Experiment) -> Vec<Case> {
    let library = profile_dir().join(format!(
        "{}fedpref_loss_dpo{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let valid = std::fs::read(&library).expect("the dpo plugin is built");
    let mut bad_magic = valid.clone();
    bad_magic[1] ^= 0x20;
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated to 64 bytes", valid[..64].to_vec()),
        ("truncated to 4 KiB", valid[..4096].to_vec()),
        ("truncated to half", truncated(&valid, 0.5)),
        ("a text file", b"not a library\n".to_vec()),
        ("a damaged magic number", bad_magic),
    ];
    let name = |i| {
        format!(
            "{}damaged{i}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    };
    file_cases(ex, "plugin", name, &["plugins", "check", FILE], inputs)
}

/// A finished run directory with one file damaged, resumed by `fedpref run`.
fn run_dir_cases(ex: &Experiment) -> Vec<Case> {
    let config = ex.config("finished", r#"["dpo"]"#, "");
    match wait(spawn(&["run", config.to_str().unwrap()]), LIMIT) {
        Ending::Exited(0, _) => {}
        other => panic!("the run to damage ended {other:?}"),
    }
    let finished = ex.path().join("finished");
    let latest = |root: &Path| {
        let dir = root.join("faults/dpo-fedavg-s1/checkpoints");
        let name = std::fs::read_to_string(dir.join("latest")).expect("latest");
        dir.join(name.trim())
    };
    type Damage = fn(&Path, &Path);
    let damages: Vec<(&str, Damage)> = vec![
        ("manifest.json truncated", |run, _| {
            cut(&run.join("manifest.json"), 0.5)
        }),
        ("manifest.json replaced by noise", |run, _| {
            noise(&run.join("manifest.json"))
        }),
        ("checkpoints/latest naming no checkpoint", |run, _| {
            std::fs::write(run.join("checkpoints/latest"), "round-0099").expect("write")
        }),
        ("the newest global.f32 truncated", |_, ckpt| {
            cut(&ckpt.join("global.f32"), 0.5)
        }),
        ("the newest state.json replaced by noise", |_, ckpt| {
            noise(&ckpt.join("state.json"))
        }),
        ("the newest aggregator.bin truncated", |_, ckpt| {
            cut(&ckpt.join("aggregator.bin"), 0.3)
        }),
        ("rounds.jsonl with a line of noise", |run, _| {
            append(&run.join("metrics/rounds.jsonl"), b"\x00{not json\n")
        }),
        ("the reference cache replaced by noise", |run, _| {
            noise(
                &run.parent()
                    .expect("sweep")
                    .join("cache/reference-logprobs.bin"),
            )
        }),
        ("config.toml truncated", |run, _| {
            cut(&run.join("config.toml"), 0.5)
        }),
    ];
    damages
        .into_iter()
        .enumerate()
        .map(|(i, (label, damage))| {
            let root = ex.path().join(format!("cases/run-{i}"));
            copy_dir(&finished, &root);
            let run = root.join("faults/dpo-fedavg-s1");
            damage(&run, &latest(&root));
            let resumed = ex.config(&format!("cases/run-{i}"), r#"["dpo"]"#, "");
            Case {
                label: format!("run directory: {label}"),
                args: ["run", &resumed.display().to_string()]
                    .map(String::from)
                    .to_vec(),
                names: vec![run.display().to_string(), root.display().to_string()],
            }
        })
        .collect()
}

fn cut(path: &Path, fraction: f64) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::write(path, truncated(&bytes, fraction)).expect("write");
}

fn noise(path: &Path) {
    let mut rng = Rng(path.as_os_str().len() as u64);
    let bytes: Vec<u8> = (0..512).map(|_| rng.below(256) as u8).collect();
    std::fs::write(path, bytes).expect("write");
}

fn append(path: &Path, bytes: &[u8]) {
    let mut all = std::fs::read(path).expect("read");
    all.extend_from_slice(bytes);
    std::fs::write(path, all).expect("write");
}

#[test]
fn malformed_inputs_end_in_located_errors_never_panics_aborts_or_hangs() {
    let ex = Experiment::new();
    let mut rng = Rng(2026);
    let mut cases = data_cases(&ex, &mut rng);
    cases.extend(model_cases(&ex, &mut rng));
    cases.extend(gguf_cases(&ex, &mut rng));
    cases.extend(config_cases(&ex, &mut rng));
    cases.extend(plugin_cases(&ex));
    cases.extend(run_dir_cases(&ex));
    let verdicts: Vec<(String, Verdict)> = cases
        .iter()
        .map(|case| (case.label.clone(), judge(case)))
        .collect();
    let count = |f: fn(&Verdict) -> bool| verdicts.iter().filter(|(_, v)| f(v)).count();
    record_counts(
        "malformed",
        &[
            ("malformed inputs tried", verdicts.len()),
            ("located errors", count(|v| *v == Verdict::Located)),
            (
                "still valid after the damage",
                count(|v| *v == Verdict::Accepted),
            ),
            (
                "errors not naming the file",
                count(|v| matches!(v, Verdict::Unlocated(_))),
            ),
            ("panics", count(|v| matches!(v, Verdict::Panicked(_)))),
            ("aborts", count(|v| matches!(v, Verdict::Aborted(_)))),
            ("hangs", count(|v| *v == Verdict::Hung)),
        ],
    );
    for (label, _) in verdicts.iter().filter(|(_, v)| *v == Verdict::Accepted) {
        println!("still valid: {label}");
    }
    let bad: Vec<String> = verdicts
        .iter()
        .filter(|(_, v)| !matches!(v, Verdict::Located | Verdict::Accepted))
        .map(|(label, v)| format!("{label}: {v:?}"))
        .collect();
    assert!(verdicts.len() >= 50, "only {} inputs tried", verdicts.len());
    assert!(
        bad.is_empty(),
        "{} of {} failed:\n{}",
        bad.len(),
        verdicts.len(),
        bad.join("\n\n")
    );
}

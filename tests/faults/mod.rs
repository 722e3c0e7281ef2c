//! The fault suite (`cargo xtask test --faults`; CI runs it with the rest): a small federated
//! run killed with SIGKILL at 20 points and resumed bit for bit, clients that fail in every way
//! a loss plugin can, two runs racing for one directory, and malformed files of every kind the
//! host reads, each of which must end in an error that names it: never a panic, an abort or a
//! hang.
//!
//! Each test writes what it tried and what happened to `target/fault-counts/<test>.json`;
//! `cargo xtask test` prints them as one table (quoted in the README's reliability section).

mod clients;
mod kills;
mod malformed;

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::util::{fedpref_bin, repo_root, write_tiny_model_and_pairs};

/// Writes `counts` for `cargo xtask test` to print, as `target/fault-counts/<test>.json`.
fn record_counts(test: &str, counts: &[(&str, usize)]) {
    let dir = repo_root().join("target/fault-counts");
    std::fs::create_dir_all(&dir).expect("target/fault-counts");
    let map: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
        .collect();
    std::fs::write(
        dir.join(format!("{test}.json")),
        serde_json::to_vec_pretty(&map).expect("JSON"),
    )
    .expect("write counts");
}

/// The longest any one command of the suite may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(120);

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(fedpref_bin());
    command
        .args(args)
        .env_remove("FEDPREF_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// `fedpref args...` started with a clean environment, stdout and stderr captured.
fn spawn(args: &[&str]) -> Child {
    command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fedpref starts")
}

/// `fedpref args...` started with its output discarded (a process about to be killed).
fn spawn_quiet(args: &[&str]) -> Child {
    command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fedpref starts")
}

/// How a process ended.
#[derive(Debug)]
enum Ending {
    /// Exited with this code.
    Exited(i32, String),
    /// Killed by a signal (an abort, a segfault).
    Signalled(String),
    /// Still running at the deadline (then killed).
    Hung,
}

/// Waits for `child` up to `limit`, reading its stderr (when piped).
fn wait(mut child: Child, limit: Duration) -> Ending {
    let started = Instant::now();
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    });
    if let Some(mut stdout) = child.stdout.take() {
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    }
    loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => {
                let text = reader.join().unwrap_or_default();
                return match status.code() {
                    Some(code) => Ending::Exited(code, text),
                    None => Ending::Signalled(format!("{status}: {text}")),
                };
            }
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Ending::Hung;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// A scratch federated experiment on a tiny random model: `methods` over FedAvg, 4 rounds of
/// 2 of 3 clients, held-out preference accuracy after every round.
struct Experiment {
    dir: tempfile::TempDir,
}

impl Experiment {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        write_tiny_model_and_pairs(dir.path(), 24);
        Experiment { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the config for `methods` (a TOML list) with `extra` appended, sending its runs to
    /// `<dir>/<output>`; returns the config's path.
    fn config(&self, output: &str, methods: &str, extra: &str) -> PathBuf {
        let root = self.path();
        let text = format!(
            r#"
[experiment]
name = "faults"
methods = {methods}
aggregators = ["fedavg"]
seeds = [1]
output_dir = "{out}"

[model]
path = "{model}"

[data]
path = "{data}"
max_length = 64
max_prompt_length = 32
eval_fraction = 0.2

[federation]
clients = 3
clients_per_round = 2
rounds = 4
eval_every = 1

[training]
batch_size = 2
local_steps = 2
lr = 1e-2

[lora]
rank = 2
alpha = 4
targets = ["q_proj", "v_proj"]

[eval]
batch_size = 4

[[eval.benchmarks]]
name = "preference-accuracy"
scorer = "preference-accuracy"
{extra}
"#,
            out = root.join(output).display(),
            model = root.join("model").display(),
            data = root.join("pairs.jsonl").display(),
        );
        let path = root.join(format!("{output}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// The run directory of `method` under `<dir>/<output>`.
    fn run_dir(&self, output: &str, method: &str) -> PathBuf {
        self.path()
            .join(output)
            .join("faults")
            .join(format!("{method}-fedavg-s1"))
    }
}

/// The bytes of a run's newest global adapter (`checkpoints/<latest>/global.f32`).
fn final_adapter(run_dir: &Path) -> Vec<u8> {
    let latest = std::fs::read_to_string(run_dir.join("checkpoints/latest"))
        .unwrap_or_else(|e| panic!("{}: no latest checkpoint: {e}", run_dir.display()));
    std::fs::read(
        run_dir
            .join("checkpoints")
            .join(latest.trim())
            .join("global.f32"),
    )
    .unwrap_or_else(|e| panic!("{}: no global.f32: {e}", run_dir.display()))
}

/// A fixed-seed generator (SplitMix64), so every run of the suite tries the same faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

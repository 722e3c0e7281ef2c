//! `fedpref bench train-step | generate | dpo-step | kto-step`: the model's speed on this
//! machine, optionally side by side with the same LoRA step in PyTorch, the same generation in
//! llama.cpp or the same preference step in TRL.

mod preference;
mod workload;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Context;
use clap::{Args, Subcommand};
use fedpref::PluginHost;
use preference::{PreferenceLoss, PreferenceStepBench, PreferenceStepReport};
use serde::Deserialize;
use workload::{BenchModel, BenchShape, GenerateBench, TrainStepBench, TrainStepReport};

use super::{DeviceArgs, UsageError};

/// `fedpref bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time one LoRA training step (forward, backward, AdamW): tokens/s, GFLOP/s, MFU, memory.
    TrainStep(TrainStepArgs),
    /// Time batched greedy generation with the KV cache: tokens/s.
    Generate(GenerateArgs),
    /// Time local DPO steps as `fedpref run` takes them (loss plugin, AdamW): tokens/s.
    DpoStep(PreferenceStepArgs),
    /// Time local KTO steps (single answers and their KL batch): tokens/s.
    KtoStep(PreferenceStepArgs),
}

/// The model and where it runs.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Random weights of this model's shapes.
    #[arg(long, value_enum, default_value_t = BenchShape::Smollm2_135m)]
    shape: BenchShape,
    /// Take the weights from this GGUF instead (overrides --shape).
    #[arg(long, value_name = "PATH")]
    gguf: Option<PathBuf>,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    json: bool,
}

impl ModelArgs {
    fn bench_model(&self) -> anyhow::Result<BenchModel> {
        Ok(BenchModel {
            shape: self.shape,
            gguf: self.gguf.clone(),
            dtype: self.device.precision().dtype(),
            device: self.device.device_or("auto")?,
        })
    }
}

/// Arguments of `fedpref bench train-step`.
#[derive(Debug, Args)]
pub struct TrainStepArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Sequences per step.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    seq: usize,
    /// LoRA rank (alpha 2r, dropout 0.05, on q_proj and v_proj).
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Run each decoder layer again in backward instead of keeping its activations
    /// (`training.activation_checkpointing`); the PyTorch twin turns on its gradient
    /// checkpointing too.
    #[arg(long)]
    checkpoint: bool,
    /// Answer tokens whose logits exist at once (`training.head_chunk`); 0 computes the
    /// whole batch's logits at once, as before chunking.
    #[arg(long, default_value_t = fedpref_model::kernels::chunked_head::DEFAULT_HEAD_CHUNK)]
    head_chunk: usize,
    /// The card's dense bf16 peak in TFLOP/s for MFU (known GPUs are looked up by name).
    #[arg(long, value_name = "TFLOPS")]
    peak_tflops: Option<f64>,
    /// Also time the same step in PyTorch with this script (xtask/bench/lora_step.py) and
    /// print the ratio.
    #[arg(long, value_name = "SCRIPT")]
    pytorch: Option<PathBuf>,
    /// The Python that runs --pytorch.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
}

/// Arguments of `fedpref bench generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompts decoded together.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Random prompt tokens per prompt.
    #[arg(long, default_value_t = 64)]
    prompt_tokens: usize,
    /// Tokens generated per prompt.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Timed runs (the median is reported), after one untimed run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also generate from the same prompts in llama.cpp with this script
    /// (xtask/bench/llama_generate.py; needs --gguf) and print the ratio.
    #[arg(long, value_name = "SCRIPT", requires = "gguf")]
    llamacpp: Option<PathBuf>,
    /// The Python that runs --llamacpp (with llama-cpp-python installed).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Also generate from the same prompts, batched, with transformers' `generate` through
    /// this script (xtask/bench/hf_generate.py; needs --gguf) and print the ratio.
    #[arg(long, value_name = "SCRIPT", requires = "gguf")]
    transformers: Option<PathBuf>,
    /// The Python that runs --transformers (with torch, transformers and gguf); default
    /// --python.
    #[arg(long)]
    transformers_python: Option<PathBuf>,
}

/// Arguments of `fedpref bench dpo-step` and `kto-step`.
#[derive(Debug, Args)]
pub struct PreferenceStepArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Synthetic preference rows.
    #[arg(long, default_value_t = 40)]
    rows: usize,
    /// Pairs per step (KTO takes both answers of each as single answers).
    #[arg(long, default_value_t = 4)]
    pairs: usize,
    /// Prompt tokens per row.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens per answer, EOS included.
    #[arg(long, default_value_t = 128)]
    answer_tokens: usize,
    /// LoRA rank (alpha 2r, on q_proj and v_proj).
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// LoRA dropout (on in both programs).
    #[arg(long, default_value_t = 0.05)]
    dropout: f64,
    /// Run each DPO pair's prompt once for both answers, as `training.shared_prefix` (the
    /// default) does; `false` times each answer as its own sequence.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    shared_prefix: bool,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Also train the same rows with TRL through this script (xtask/bench/trl_step.py; needs
    /// --gguf) and print the ratio.
    #[arg(long, value_name = "SCRIPT", requires = "gguf")]
    trl: Option<PathBuf>,
    /// The Python that runs --trl (with torch, transformers, peft, trl and gguf).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
}

/// What `trl_step.py` prints (one JSON line).
#[derive(Debug, Deserialize)]
struct TrlReport {
    s_per_step: f64,
    tokens_per_step: f64,
    tokens_per_s: f64,
    reference_s: f64,
    peak_rss_mib: f64,
    trl: String,
}

/// What `lora_step.py` prints (one JSON line).
#[derive(Debug, Deserialize)]
struct PytorchReport {
    s_per_step: f64,
    tokens_per_s: f64,
    forward_s: f64,
    backward_s: f64,
    optimizer_s: f64,
    peak_gpu_mib: Option<f64>,
    /// Its process's peak resident memory (absent from older scripts).
    #[serde(default)]
    peak_rss_mib: Option<f64>,
    torch: String,
}

/// What `llama_generate.py` and `hf_generate.py` print (one JSON line).
#[derive(Debug, Deserialize)]
struct GenerationReport {
    seconds: f64,
    tokens_per_s: f64,
    /// The reference's version.
    #[serde(alias = "llama_cpp", alias = "transformers")]
    version: String,
}

/// Runs a benchmark and prints its table (or JSON line); `host` loads the plugins (the
/// preference steps' loss).
pub fn run(
    command: &BenchCommand,
    host: impl FnOnce() -> anyhow::Result<PluginHost>,
) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::TrainStep(args) => train_step(args),
        BenchCommand::Generate(args) => generate(args),
        BenchCommand::DpoStep(args) => preference_step(PreferenceLoss::Dpo, args, &host()?),
        BenchCommand::KtoStep(args) => preference_step(PreferenceLoss::Kto, args, &host()?),
    }
}

fn train_step(args: &TrainStepArgs) -> anyhow::Result<ExitCode> {
    if args.steps == 0 || args.batch == 0 || args.seq < 2 {
        return Err(UsageError("--steps and --batch must be > 0, --seq >= 2".into()).into());
    }
    let model = args.model.bench_model()?;
    let settings = TrainStepBench {
        batch: args.batch,
        seq: args.seq,
        warmup: args.warmup,
        steps: args.steps,
        rank: args.rank,
        memory: fedpref_model::MemoryOptions {
            head_chunk: if args.head_chunk == 0 {
                usize::MAX
            } else {
                args.head_chunk
            },
            checkpoint_layers: args.checkpoint,
        },
    };
    eprintln!(
        "bench train-step: {} {} on {}, batch {} x {} tokens, LoRA r={} on q/v, {} warm-up + {} timed steps, {:?}",
        model.gguf.as_ref().map_or(model.shape.name().to_owned(), |p| p.display().to_string()),
        args.model.device.precision().as_str(),
        fedpref_model::describe(&model.device),
        args.batch, args.seq, args.rank, args.warmup, args.steps, settings.memory
    );
    let ours = workload::train_step(&model, &settings)?;
    let peak = args
        .peak_tflops
        .or_else(|| ours.context.gpu.as_deref().and_then(bf16_peak_tflops));
    let mfu = peak.map(|p| ours.gflops_per_s / (p * 1e3));
    let torch = match &args.pytorch {
        Some(script) => Some(run_pytorch(args, &model, script)?),
        None => None,
    };
    if args.model.json {
        let mut v = serde_json::to_value(&ours)?;
        v["mfu"] = serde_json::json!(mfu);
        if let Some(t) = &torch {
            v["pytorch_tokens_per_s"] = serde_json::json!(t.tokens_per_s);
            v["pytorch_peak_mib"] = serde_json::json!(t.peak_gpu_mib.or(t.peak_rss_mib));
            v["ratio_to_pytorch"] = serde_json::json!(ours.tokens_per_s / t.tokens_per_s);
        }
        println!("{v}");
    } else {
        print!("{}", train_step_table(&ours, mfu, torch.as_ref()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Dense bf16 tensor-core peak of the GPUs we know, TFLOP/s (vendor data sheets).
fn bf16_peak_tflops(gpu: &str) -> Option<f64> {
    let table = [
        ("H200", 989.4),
        ("H100 PCIe", 756.0),
        ("H100", 989.4),
        ("A100", 312.0),
        ("L40S", 362.0),
        ("L4", 121.0),
    ];
    table
        .iter()
        .find(|(name, _)| gpu.contains(name))
        .map(|&(_, peak)| peak)
}

fn run_pytorch(
    args: &TrainStepArgs,
    model: &BenchModel,
    script: &std::path::Path,
) -> anyhow::Result<PytorchReport> {
    let device = match model.device.location() {
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        _ => "cpu".to_owned(),
    };
    let mut cmd = Command::new(&args.python);
    cmd.arg(script)
        .args(["--shape", args.model.shape.name()])
        .args(["--dtype", args.model.device.precision().as_str()])
        .args(["--device", &device])
        .args(["--batch", &args.batch.to_string()])
        .args(["--seq", &args.seq.to_string()])
        .args(["--rank", &args.rank.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(args.checkpoint.then_some("--checkpoint"))
        .args([
            "--threads",
            &candle_core::utils::get_num_threads().to_string(),
        ]);
    eprintln!("bench train-step: the same step in PyTorch: {cmd:?}");
    run_reference(cmd, script, None)
}

/// Runs a reference script (`cmd`, which runs `script`), feeding it `stdin` if given, and
/// reads the JSON line it prints last.
fn run_reference<T: serde::de::DeserializeOwned>(
    mut cmd: Command,
    script: &std::path::Path,
    stdin: Option<&[u8]>,
) -> anyhow::Result<T> {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes)
            .with_context(|| format!("writing to {}'s stdin", script.display()))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("{} printed no JSON line:\n{stdout}", script.display()))?;
    serde_json::from_str(line)
        .with_context(|| format!("reading {}'s JSON: {line}", script.display()))
}

/// Generates from `prompts` with the reference `script` (llama.cpp or transformers), run by
/// `python`, on the same GGUF and thread count.
fn run_generation_reference(
    args: &GenerateArgs,
    python: &std::path::Path,
    script: &std::path::Path,
    prompts: &[Vec<u32>],
) -> anyhow::Result<GenerationReport> {
    let Some(gguf) = &args.model.gguf else {
        return Err(UsageError(format!("{} needs --gguf", script.display())).into());
    };
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg("--gguf")
        .arg(gguf)
        .args(["--new-tokens", &args.new_tokens.to_string()])
        .args(["--runs", &args.runs.to_string()])
        .args([
            "--threads",
            &candle_core::utils::get_num_threads().to_string(),
        ]);
    eprintln!("bench generate: the same prompts through {cmd:?}");
    run_reference(cmd, script, Some(&serde_json::to_vec(prompts)?))
}

fn train_step_table(
    r: &TrainStepReport,
    mfu: Option<f64>,
    torch: Option<&PytorchReport>,
) -> String {
    let ms = |s: f64| format!("{:.1}", s * 1e3);
    let c = &r.context;
    let mut out = format!(
        "model {} ({}) on {}{}, batch {} x {}\n",
        c.model,
        c.dtype,
        c.device,
        c.gpu.as_ref().map_or(String::new(), |g| format!(" [{g}]")),
        r.batch,
        r.seq
    );
    out.push_str(&format!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10}\n",
        "", "fwd ms", "bwd ms", "optim ms", "step ms", "tokens/s", "GFLOP/s", "MFU", "peak MiB"
    ));
    let peak = c.peak_gpu_mib.unwrap_or(c.peak_rss_mib);
    out.push_str(&format!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10.1} {:>10.1} {:>8} {:>10.0}\n",
        "fedpref",
        ms(r.forward_s),
        ms(r.backward_s),
        ms(r.optimizer_s),
        ms(r.s_per_step),
        r.tokens_per_s,
        r.gflops_per_s,
        mfu.map_or("-".to_owned(), |m| format!("{:.1}%", m * 100.0)),
        peak
    ));
    if let Some(t) = torch {
        let t_mfu = mfu.map(|m| m * r.s_per_step / t.s_per_step);
        out.push_str(&format!(
            "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10.1} {:>10.1} {:>8} {:>10}\n",
            "pytorch",
            ms(t.forward_s),
            ms(t.backward_s),
            ms(t.optimizer_s),
            ms(t.s_per_step),
            t.tokens_per_s,
            r.flops_per_step / t.s_per_step / 1e9,
            t_mfu.map_or("-".to_owned(), |m| format!("{:.1}%", m * 100.0)),
            t.peak_gpu_mib
                .or(t.peak_rss_mib)
                .map_or("-".to_owned(), |m| format!("{m:.0}"))
        ));
        out.push_str(&format!(
            "fedpref / pytorch {}: {:.2}x tokens/s\n",
            t.torch,
            r.tokens_per_s / t.tokens_per_s
        ));
    }
    out.push_str(&format!(
        "a plain 2048^3 matmul here: {:.1} GFLOP/s; the step reaches {:.0}% of it\n",
        r.matmul_gflops_per_s,
        100.0 * r.gflops_per_s / r.matmul_gflops_per_s
    ));
    out.push_str(&format!(
        "losses {:?}; peak RSS {:.0} MiB; {} LoRA parameters\n",
        r.losses, c.peak_rss_mib, r.trainable_params
    ));
    out
}

fn generate(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    if args.runs == 0 || args.batch == 0 || args.prompt_tokens == 0 || args.new_tokens == 0 {
        return Err(UsageError(
            "--runs, --batch, --prompt-tokens, --new-tokens must be > 0".into(),
        )
        .into());
    }
    let model = args.model.bench_model()?;
    let settings = GenerateBench {
        batch: args.batch,
        prompt_tokens: args.prompt_tokens,
        new_tokens: args.new_tokens,
        warmup: 1,
        runs: args.runs,
    };
    let r = workload::generate(&model, &settings)?;
    let llama = match &args.llamacpp {
        Some(script) => Some(run_generation_reference(
            args,
            &args.python,
            script,
            &r.prompts,
        )?),
        None => None,
    };
    let hf = match &args.transformers {
        Some(script) => {
            let python = args.transformers_python.as_ref().unwrap_or(&args.python);
            Some(run_generation_reference(args, python, script, &r.prompts)?)
        }
        None => None,
    };
    if args.model.json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(l) = &llama {
            v["llamacpp_tokens_per_s"] = serde_json::json!(l.tokens_per_s);
            v["ratio_to_llamacpp"] = serde_json::json!(r.tokens_per_s / l.tokens_per_s);
        }
        if let Some(h) = &hf {
            v["transformers_tokens_per_s"] = serde_json::json!(h.tokens_per_s);
            v["ratio_to_transformers"] = serde_json::json!(r.tokens_per_s / h.tokens_per_s);
        }
        println!("{v}");
    } else {
        let c = &r.context;
        println!(
            "model {} ({}) on {}{}: {} prompts x {} tokens, {} new tokens each (greedy, KV cache)",
            c.model,
            c.dtype,
            c.device,
            c.gpu.as_ref().map_or(String::new(), |g| format!(" [{g}]")),
            r.batch,
            r.prompt_tokens,
            r.new_tokens
        );
        println!(
            "{:.2} s per generation, {:.1} tokens/s; peak {} MiB",
            r.seconds,
            r.tokens_per_s,
            c.peak_gpu_mib
                .map_or(format!("RSS {:.0}", c.peak_rss_mib), |m| format!(
                    "GPU {m:.0}"
                ))
        );
        if let Some(l) = &llama {
            println!(
                "llama.cpp (llama-cpp-python {}), the same prompts one after another: {:.2} s, {:.1} tokens/s",
                l.version, l.seconds, l.tokens_per_s
            );
            println!(
                "fedpref / llama.cpp: {:.2}x tokens/s",
                r.tokens_per_s / l.tokens_per_s
            );
        }
        if let Some(h) = &hf {
            println!(
                "transformers {} generate, the same prompts batched: {:.2} s, {:.1} tokens/s",
                h.version, h.seconds, h.tokens_per_s
            );
            println!(
                "fedpref / transformers: {:.2}x tokens/s",
                r.tokens_per_s / h.tokens_per_s
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn preference_step(
    loss: PreferenceLoss,
    args: &PreferenceStepArgs,
    host: &PluginHost,
) -> anyhow::Result<ExitCode> {
    if args.steps == 0 || args.pairs == 0 || args.rows < args.pairs {
        return Err(UsageError("--steps and --pairs must be > 0, --rows >= --pairs".into()).into());
    }
    let Some(gguf) = &args.model.gguf else {
        return Err(UsageError(
            "the preference steps need a real tokenizer: pass --gguf <model> (assets/models/...)"
                .into(),
        )
        .into());
    };
    let model = args.model.bench_model()?;
    let tokenizer = fedpref_model::TextTokenizer::from_gguf(&fedpref_model::GgufFile::open(gguf)?)?;
    let rows = preference::synthetic_rows(
        &tokenizer,
        args.rows,
        args.prompt_tokens,
        args.answer_tokens,
    )?;
    let settings = PreferenceStepBench {
        loss,
        pairs_per_step: args.pairs,
        prompt_tokens: args.prompt_tokens,
        answer_tokens: args.answer_tokens,
        warmup: args.warmup,
        steps: args.steps,
        rank: args.rank,
        dropout: args.dropout,
        shared_prefix: args.shared_prefix,
    };
    eprintln!(
        "bench {}-step: {} on {}, {} pairs per step of {} prompt + {} answer tokens, LoRA r={} \
         dropout {} on q/v, {} warm-up + {} timed steps",
        loss.name(),
        gguf.display(),
        fedpref_model::describe(&model.device),
        args.pairs,
        args.prompt_tokens,
        args.answer_tokens,
        args.rank,
        args.dropout,
        args.warmup,
        args.steps
    );
    let ours = preference::preference_step(&model, host, &settings, &rows)?;
    let trl = match &args.trl {
        Some(script) => Some(run_trl(loss, args, script, &rows)?),
        None => None,
    };
    if args.model.json {
        let mut v = serde_json::to_value(&ours)?;
        if let Some(t) = &trl {
            v["trl_tokens_per_s"] = serde_json::json!(t.tokens_per_s);
            v["ratio_to_trl"] = serde_json::json!(ours.tokens_per_s / t.tokens_per_s);
        }
        println!("{v}");
    } else {
        print!("{}", preference_table(&ours, trl.as_ref()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Trains the same `rows` with TRL through `script` (rows on stdin as JSON).
fn run_trl(
    loss: PreferenceLoss,
    args: &PreferenceStepArgs,
    script: &std::path::Path,
    rows: &[preference::PreferenceRow],
) -> anyhow::Result<TrlReport> {
    let Some(gguf) = &args.model.gguf else {
        return Err(UsageError("--trl needs --gguf".into()).into());
    };
    let mut cmd = Command::new(&args.python);
    cmd.arg(script)
        .args(["--loss", loss.name()])
        .arg("--gguf")
        .arg(gguf)
        .args(["--pairs", &args.pairs.to_string()])
        .args(["--rank", &args.rank.to_string()])
        .args(["--dropout", &args.dropout.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args([
            "--threads",
            &candle_core::utils::get_num_threads().to_string(),
        ]);
    eprintln!("bench {}-step: the same rows in TRL: {cmd:?}", loss.name());
    run_reference(cmd, script, Some(&serde_json::to_vec(rows)?))
}

fn preference_table(r: &PreferenceStepReport, trl: Option<&TrlReport>) -> String {
    let c = &r.context;
    let mut out = format!(
        "{} step, model {} ({}) on {}; reference log-probs precomputed\n",
        r.loss, c.model, c.dtype, c.device
    );
    out.push_str(&format!(
        "{:<10} {:>10} {:>14} {:>10} {:>12} {:>10}\n",
        "", "s/step", "tokens/step", "tokens/s", "reference s", "peak MiB"
    ));
    out.push_str(&format!(
        "{:<10} {:>10.2} {:>14} {:>10.1} {:>12.1} {:>10.0}\n",
        "fedpref", r.s_per_step, r.tokens_per_step, r.tokens_per_s, r.reference_s, c.peak_rss_mib
    ));
    if let Some(t) = trl {
        out.push_str(&format!(
            "{:<10} {:>10.2} {:>14.0} {:>10.1} {:>12.1} {:>10.0}\n",
            "trl", t.s_per_step, t.tokens_per_step, t.tokens_per_s, t.reference_s, t.peak_rss_mib
        ));
        out.push_str(&format!(
            "fedpref / trl {}: {:.2}x tokens/s\n",
            t.trl,
            r.tokens_per_s / t.tokens_per_s
        ));
    }
    out.push_str(&format!(
        "step times {:?}; losses {:?}\n",
        r.step_times, r.losses
    ));
    out
}

//! `cargo xtask bench train-step | generate | dpo-step | kto-step [ARGS]`: builds `fedpref`
//! (and, for the preference steps, the plugins) with the release profile (benchmarks of a
//! debug build measure the wrong thing) and runs `fedpref bench <which> ARGS`, which prints the
//! table (see `core/src/cli/bench/`).
//!
//! Compare with PyTorch on the same machine by adding `--pytorch xtask/bench/lora_step.py`
//! (and `--python <a Python with torch, transformers and peft>`), generation with llama.cpp
//! by adding `--gguf <model> --llamacpp xtask/bench/llama_generate.py` (and `--python <a
//! Python with llama-cpp-python>`), a preference step with TRL by adding `--gguf <model> --trl
//! xtask/bench/trl_step.py` (and `--python <a Python with torch, transformers, peft, trl and
//! gguf>`).

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::flags::{self, BenchKind};

/// Runs `cargo xtask bench`.
pub fn run(sh: &Shell, flags: &flags::Bench) -> Result<()> {
    if wants_cuda(&flags.args) {
        bail!(
            "this builds the CPU binary; for a GPU run `cargo xtask build --cuda`, unpack \
             target/cuda-dist/fedpref-cuda.tar.xz on the GPU machine and run \
             `fedpref bench <train-step|generate> --device cuda:0 ...` there (README, \"Speed and GPU\")"
        );
    }
    let which = match flags.which {
        BenchKind::TrainStep => "train-step",
        BenchKind::Generate => "generate",
        BenchKind::DpoStep => "dpo-step",
        BenchKind::KtoStep => "kto-step",
    };
    if matches!(flags.which, BenchKind::DpoStep | BenchKind::KtoStep) {
        // The loss comes from its plugin, found next to the executable.
        crate::plugins::run(sh, &flags::BuildPlugins { release: true })?;
    } else {
        cmd!(sh, "cargo build --release --package fedpref").run()?;
    }
    let args = &flags.args;
    cmd!(sh, "target/release/fedpref bench {which} {args...}").run()?;
    Ok(())
}

/// Whether `args` ask for a CUDA device (`--device cuda…` or `--device=cuda…`).
fn wants_cuda(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        a.strip_prefix("--device=")
            .is_some_and(|d| d.starts_with("cuda"))
            || (a == "--device" && args.get(i + 1).is_some_and(|d| d.starts_with("cuda")))
    })
}

#[cfg(test)]
mod tests {
    use super::wants_cuda;

    #[test]
    fn cuda_requests_are_recognized_in_both_spellings() {
        let args = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert!(wants_cuda(&args("--dtype bf16 --device cuda:0")));
        assert!(wants_cuda(&args("--device=cuda")));
        assert!(!wants_cuda(&args("--device cpu --shape cuda-like")));
        assert!(!wants_cuda(&args("--device")));
    }
}

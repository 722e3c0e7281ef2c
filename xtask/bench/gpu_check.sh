#!/usr/bin/env bash
# The GPU check in one device call (README, "GPU"): unpacks `cargo xtask build --cuda`'s
# archive, runs the GPU tests, the train-step benches against PyTorch on the same card (speed
# and peak memory at issue 21's shapes), the generation benches, and a short federated run (GPU
# f32, GPU bf16, then the same on the CPU for comparison). Everything lands in $OUT as it
# finishes, so a timeout keeps what ran. About 12 minutes on an H100.
#
#   bash xtask/bench/gpu_check.sh MODEL_DIR
#
# MODEL_DIR: a Hugging Face model directory for the run; when it has no weights (only
# config.json and the tokenizer files) random weights of its shapes are written first with
# transformers (the default GGUF is larger than what one device call carries).
set -uo pipefail
model_dir=${1:?usage: gpu_check.sh MODEL_DIR}
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
bin=/tmp/fedpref-cuda
mkdir -p "$bin" && tar -xJf target/cuda-dist/fedpref-cuda.tar.xz -C "$bin" || exit 1
# The CUDA 13 libraries candle links (cuBLAS, cuRAND, NVRTC) come with PyTorch's wheels.
cuda_lib=$(python3 -c 'import nvidia.cu13 as c; print(list(c.__path__)[0] + "/lib")' 2>/dev/null) \
    || cuda_lib=$(dirname "$(find / -name 'libcublas.so.13' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH="$cuda_lib:${LD_LIBRARY_PATH:-}"
summary="$out/summary.txt"
step() { echo "== $* ($(date +%T))" | tee -a "$summary"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$summary"
echo "CUDA libraries: $cuda_lib" | tee -a "$summary"

step "GPU tests (CUDA against the CPU; chunked attention, chunked head and checkpointed layers against their twins)"
"$bin/fedpref-cuda-tests" device_tests 2>&1 | grep -E '^test |test result' | tee -a "$summary"

# Issue 21's targets, bf16, PyTorch (fused sdpa) in the same run: tokens/s and peak GPU memory
# at 4 x 256 and 16 x 512 for both shapes, and whether Qwen2.5-0.5B fits at 8 x 2048 with and
# without activation checkpointing (PyTorch checkpoints too when fedpref does). The last case
# runs the head unchunked (--head-chunk 0) to show what chunking saves, without PyTorch.
step "train-step benches (5 timed steps after 2 warm-up; PyTorch in the same run)"
for case in "smollm2-135m 4 256 pytorch" "qwen2.5-0.5b 4 256 pytorch" "smollm2-135m 16 512 pytorch" \
    "qwen2.5-0.5b 16 512 pytorch" "qwen2.5-0.5b 8 2048 pytorch" "qwen2.5-0.5b 8 2048 pytorch --checkpoint" \
    "qwen2.5-0.5b 16 512 alone --head-chunk 0"; do
    set -- $case
    shape=$1 batch=$2 seq=$3 reference=()
    [ "$4" = pytorch ] && reference=(--pytorch xtask/bench/lora_step.py)
    shift 4
    step "train-step $shape bf16 $batch x $seq $*"
    "$bin/fedpref" bench train-step --device cuda:0 --shape "$shape" --dtype bf16 --batch "$batch" \
        --seq "$seq" --warmup 2 --steps 5 "$@" "${reference[@]}" 2>&1 \
        | grep -v -i warn | tee -a "$summary"
done

step "generate benches (8 prompts x 128 tokens, 128 new tokens, greedy)"
for shape in smollm2-135m qwen2.5-0.5b; do
    for dtype in f32 bf16; do
        "$bin/fedpref" bench generate --device cuda:0 --shape "$shape" --dtype "$dtype" \
            --batch 8 --prompt-tokens 128 --new-tokens 128 2>&1 | tee -a "$summary"
    done
done

step "federated run (DPO, KTO; 3 clients, 2 rounds)"
if ! ls "$model_dir"/*.safetensors >/dev/null 2>&1; then
    python3 - "$model_dir" <<'PY' 2>&1 | tail -2 | tee -a "$summary"
import sys, torch
from transformers import AutoConfig, AutoModelForCausalLM
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(sys.argv[1]))
model.save_pretrained(sys.argv[1])
print("random weights of the model's shapes written to", sys.argv[1])
PY
fi
# The CPU run is there to compare metrics with; it gets 3 minutes and keeps what it finished.
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -v)
for run in "cuda:0 bf16 600" "cuda:0 f32 600" "cpu f32 180"; do
    set -- $run
    name="${1%%:*}-$2"
    step "fedpref run on $1 in $2"
    timeout "$3" "${timer[@]}" "$bin/fedpref" run xtask/bench/gpu_run.toml --device "$1" --dtype "$2" \
        --set "model.path=\"$model_dir\"" \
        --set "experiment.output_dir=\"/tmp/runs-$name\"" >"$out/run-$name.txt" 2>&1
    tail -8 "$out/run-$name.txt" | tee -a "$summary"
    grep -E 'Maximum resident|Elapsed' "$out/run-$name.txt" | tee -a "$summary"
    # Per-round metrics of both runs, one file (the device call returns at most 8 files).
    for f in /tmp/runs-"$name"/gpu-check/*/metrics/rounds.jsonl; do
        sed "s|^|$(basename "$(dirname "$(dirname "$f")")") |" "$f"
    done >"$out/rounds-$name.txt"
done
step "done"

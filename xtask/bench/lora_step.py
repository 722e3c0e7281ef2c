"""The LoRA training step of `fedpref bench train-step`, in PyTorch, for a side-by-side ratio.

    python3 xtask/bench/lora_step.py --shape smollm2-135m --dtype bf16 --device cuda:0

Random weights of the model's real shapes (transformers' own Llama / Qwen2 modules, the
default "sdpa" attention), LoRA r (alpha 2r, dropout 0.05) on q_proj and v_proj with peft
(adapters in float32 over a bf16 base, as fedpref), AdamW lr 1e-4, a batch of random token
ids, causal-LM loss over every position. Warm-up steps, then timed steps split into forward
(through the loss), backward and optimizer, each ended by a device synchronize. Prints one
JSON line; `fedpref bench train-step --pytorch <this file>` reads it.
"""
import argparse
import json
import statistics
import time

from hf_model import peak_rss_mib

SHAPES = {
    "smollm2-135m": dict(kind="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         rope_theta=100000.0, rms_norm_eps=1e-5, max_position_embeddings=8192),
    "qwen2.5-0.5b": dict(kind="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=32768),
}


def build_model(shape, dtype, device):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    spec = dict(SHAPES[shape])
    kind = spec.pop("kind")
    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if kind == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    config = config_cls(tie_word_embeddings=True, use_cache=False, **spec)
    torch.manual_seed(0)
    return model_cls(config).to(dtype=dtype, device=device)


def add_lora(model, rank):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05,
                                            target_modules=["q_proj", "v_proj"], bias="none",
                                            task_type="CAUSAL_LM"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", action="store_true",
                    help="gradient checkpointing per decoder layer (fedpref's --checkpoint)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    model = add_lora(build_model(args.shape, dtype, device), args.rank)
    if args.checkpoint:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), generator=g).to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps, fwd, bwd, optim, losses = [], [], [], [], []
    for i in range(args.warmup + args.steps):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        losses.append(round(loss.item(), 4))  # waits for the forward pass
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        sync()
        t3 = time.perf_counter()
        if i >= args.warmup:
            steps.append(t3 - t0)
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            optim.append(t3 - t2)
    med = statistics.median(steps)
    print(json.dumps({
        "shape": args.shape, "dtype": args.dtype, "device": args.device,
        "s_per_step": med, "step_times": steps,
        "forward_s": statistics.median(fwd), "backward_s": statistics.median(bwd),
        "optimizer_s": statistics.median(optim),
        "tokens_per_s": args.batch * args.seq / med,
        "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "peak_rss_mib": peak_rss_mib(),
        "losses": losses, "torch": torch.__version__,
        "attn_impl": getattr(model.config, "_attn_implementation", None),
        "checkpoint": args.checkpoint,
    }), flush=True)


if __name__ == "__main__":
    main()

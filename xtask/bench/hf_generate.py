"""The generation of `fedpref bench generate`, in transformers, for a side-by-side ratio.

    python xtask/bench/hf_generate.py --gguf MODEL.gguf --new-tokens 64 < PROMPTS.json

Reads the prompts fedpref decodes from stdin (a JSON list of lists of token ids), left-pads them
into one batch and runs `model.generate` greedily for exactly `--new-tokens` tokens (no stop
token), float32, with its KV cache: what a PyTorch user generating a batch of answers would
run. The GGUF's weights are dequantized to float32 (`hf_model.py`). One untimed run, then
`--runs` timed runs; prints one JSON line with the median.

Pinned versions (what the ratios in the README were measured with): torch 2.15.0,
transformers 5.24.0, gguf 0.19.0.
"""
import argparse
import json
import statistics
import sys
import time

from hf_model import load_model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    prompts = json.load(sys.stdin)
    model, tokenizer = load_model(args.gguf, torch.float32)
    model.eval()
    longest = max(len(p) for p in prompts)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (longest - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
    times = []
    for run in range(1 + args.runs):
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                 max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                 pad_token_id=pad)
        elapsed = time.perf_counter() - start
        assert out.shape[1] == longest + args.new_tokens, out.shape
        if run > 0:
            times.append(elapsed)
    seconds = statistics.median(times)
    print(json.dumps({
        "seconds": seconds,
        "tokens_per_s": len(prompts) * args.new_tokens / seconds,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()

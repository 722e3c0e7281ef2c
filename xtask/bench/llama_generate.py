"""The generation of `fedpref bench generate`, in llama.cpp (llama-cpp-python), for a side-by-side ratio.

    python xtask/bench/llama_generate.py --gguf MODEL.gguf --new-tokens 64 < PROMPTS.json

Reads the same prompts fedpref decodes from stdin (a JSON list of lists of token ids), and for each one
in turn evaluates the prompt and generates `--new-tokens` greedy tokens (top-k 1, no stop
token, the KV cache cleared between prompts), as a user of llama.cpp generating answers one
after another would. One untimed run, then `--runs` timed runs; prints one JSON line with the
median. Needs llama-cpp-python (`pip install llama-cpp-python==0.3.16`, builds llama.cpp).
"""
import argparse
import json
import statistics
import sys
import time


def generate_all(llm, prompts, new_tokens):
    """Greedy `new_tokens` after each prompt, one prompt after another; returns the tokens."""
    outputs = []
    for prompt in prompts:
        llm.reset()
        tokens = []
        for token in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            tokens.append(token)
            if len(tokens) == new_tokens:
                break
        outputs.append(tokens)
    return outputs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import llama_cpp

    prompts = json.load(sys.stdin)
    longest = max(len(p) for p in prompts) + args.new_tokens
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=longest, n_batch=longest,
                          n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    times = []
    for run in range(1 + args.runs):
        start = time.perf_counter()
        outputs = generate_all(llm, prompts, args.new_tokens)
        elapsed = time.perf_counter() - start
        assert all(len(o) == args.new_tokens for o in outputs)
        if run > 0:
            times.append(elapsed)
    seconds = statistics.median(times)
    print(json.dumps({
        "seconds": seconds,
        "tokens_per_s": len(prompts) * args.new_tokens / seconds,
        "llama_cpp": llama_cpp.__version__,
    }))


if __name__ == "__main__":
    main()

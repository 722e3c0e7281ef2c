#!/usr/bin/env python3
"""Independent reference forward pass of a llama-architecture GGUF in numpy (float64).

Reads and dequantizes the weights with the `gguf` package (pip install gguf numpy), keeps the
q/k rows as llama.cpp stored them (permuted) and applies llama.cpp's interleaved RoPE to them,
so it shares no code or layout decision with fedpref's decoder (which un-permutes and uses the
Hugging Face half layout). Prints JSON {"token_ids": [...], "logprobs": [...]} where
logprobs[i] = log p(token_ids[i + 1] | token_ids[..i + 1]).

fedpref's test `model::logprobs::tests::smollm2_logprobs_match_numpy_reference` compares against
the fixture this script wrote:
    python tests/reference/llama_numpy.py assets/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --ids 1,4093,... > tests/reference/smollm2_logprobs.json
"""
import argparse
import json

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--text", default=None, help="the text the ids encode (recorded only)")
    args = ap.parse_args()
    ids = [int(x) for x in args.ids.split(",")]

    r = GGUFReader(args.gguf)

    def meta(key):
        f = r.fields[key]
        return f.contents()

    arch = meta("general.architecture")
    assert arch == "llama", arch
    n_layer = int(meta("llama.block_count"))
    n_head = int(meta("llama.attention.head_count"))
    n_kv = int(meta("llama.attention.head_count_kv"))
    hidden = int(meta("llama.embedding_length"))
    eps = float(meta("llama.attention.layer_norm_rms_epsilon"))
    theta = float(meta("llama.rope.freq_base"))
    d = hidden // n_head

    tensors = {t.name: t for t in r.tensors}

    def w(name):
        t = tensors[name]
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        return a.reshape(tuple(reversed([int(x) for x in t.shape])))

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    n = len(ids)
    pos = np.arange(n)[:, None]
    freqs = theta ** (-np.arange(0, d, 2) / d)  # (d/2,)
    ang = pos * freqs[None, :]  # (n, d/2)
    cos, sin = np.cos(ang), np.sin(ang)

    def rope_interleaved(x):  # x: (heads, n, d), pairs (2i, 2i+1)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x1 * cos - x2 * sin
        out[..., 1::2] = x1 * sin + x2 * cos
        return out

    emb = w("token_embd.weight")
    x = emb[ids]  # (n, hidden)
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(n_layer):
        p = f"blk.{l}."
        h = rms(x, w(p + "attn_norm.weight"))
        q = (h @ w(p + "attn_q.weight").T).reshape(n, n_head, d).transpose(1, 0, 2)
        k = (h @ w(p + "attn_k.weight").T).reshape(n, n_kv, d).transpose(1, 0, 2)
        v = (h @ w(p + "attn_v.weight").T).reshape(n, n_kv, d).transpose(1, 0, 2)
        q, k = rope_interleaved(q), rope_interleaved(k)
        group = n_head // n_kv
        k = np.repeat(k, group, axis=0)
        v = np.repeat(v, group, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(d) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, n_head * d)
        x = x + a @ w(p + "attn_output.weight").T
        h = rms(x, w(p + "ffn_norm.weight"))
        g = h @ w(p + "ffn_gate.weight").T
        u = h @ w(p + "ffn_up.weight").T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w(p + "ffn_down.weight").T
    x = rms(x, w("output_norm.weight"))
    head = w("output.weight") if "output.weight" in tensors else emb
    logits = x @ head.T
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[:, 0]
    lp = [float(logits[i, ids[i + 1]] - lse[i]) for i in range(n - 1)]
    out = {"token_ids": ids, "logprobs": lp}
    if args.text is not None:
        out["text"] = args.text
    print(json.dumps(out))


if __name__ == "__main__":
    main()

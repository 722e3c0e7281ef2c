"""What the PyTorch references of `fedpref bench` share: a GGUF as a plain float32 transformers
model, and the process's peak memory.

transformers dequantizes a GGUF on load but leaves a `GgufHfQuantizer` attached, which neither
trains nor saves; the weights are copied into a model built from the same config instead.
"""
import os


def peak_rss_mib():
    """This process's peak resident memory in MiB, from /proc's VmHWM: `ru_maxrss` would also
    count the memory of the process that started this one (Linux keeps it across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load_model(gguf, dtype):
    """The model and tokenizer of `gguf`, weights dequantized to `dtype`, no quantizer attached."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise SystemExit(f"{gguf}: weights did not map onto the model: {missing} {unexpected}")
    model.tie_weights()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer

"""The preference steps of `fedpref bench dpo-step | kto-step`, in TRL, for a side-by-side ratio.

    python xtask/bench/trl_step.py --loss dpo --gguf MODEL.gguf --pairs 4 < ROWS.json

Reads the rows fedpref trains on from stdin (a JSON list of {"prompt_ids", "chosen_ids",
"rejected_ids"}, EOS ending each answer) and trains on the same token ids with TRL's
`DPOTrainer` (pairs) or `KTOTrainer` (each row's two answers as single labelled answers, the KL
batch built by TRL's own rotation of completions within a batch). As fedpref: the GGUF's
weights dequantized to float32 (`hf_model.py`), LoRA r (alpha 2r, `--dropout`, kept on: `disable_dropout=False`)
on q_proj and v_proj, beta 0.1, AdamW lr 1e-4, gradient clipping at 1, reference log-probs
precomputed before training (`precompute_ref_log_probs=True`). The rows skip TRL's tokenization
(they are its output already); the training step is TRL's own. Step time runs from the
`on_step_begin` to the `on_step_end` callback. Prints one JSON line with the median of the
timed steps after `--warmup`.

Pinned versions (what the ratios in the README were measured with): torch 2.15.0,
transformers 5.24.0, peft 0.21.2, trl 1.16.0, accelerate 1.15.0, datasets 5.2.0, gguf 0.19.0.
"""
import argparse
import json
import random
import statistics
import sys
import tempfile
import time

from hf_model import load_model, peak_rss_mib


def lora_config(rank, dropout):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=dropout, target_modules=["q_proj", "v_proj"],
                      bias="none", task_type="CAUSAL_LM")


def kto_rows(rows, batch):
    """Each row's answers as single labelled answers, shuffled, with TRL's KL completions: the
    completions rotated by +1 within each batch."""
    singles = []
    for r in rows:
        singles.append({"prompt_ids": r["prompt_ids"], "completion_ids": r["chosen_ids"], "label": True})
        singles.append({"prompt_ids": r["prompt_ids"], "completion_ids": r["rejected_ids"], "label": False})
    random.Random(0).shuffle(singles)
    for start in range(0, len(singles), batch):
        chunk = singles[start:start + batch]
        completions = [s["completion_ids"] for s in chunk]
        for s, kl in zip(chunk, completions[-1:] + completions[:-1]):
            s["KL_completion_ids"] = kl
    return singles


def pretokenized(trainer_cls):
    """`trainer_cls` taking rows that are already tokenized as its own `_prepare_dataset` leaves them."""

    class Pretokenized(trainer_cls):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

        def _precompute_ref_logps(self, *args, **kwargs):
            started = time.perf_counter()
            out = super()._precompute_ref_logps(*args, **kwargs)
            self.reference_s = getattr(self, "reference_s", 0.0) + time.perf_counter() - started
            return out

    return Pretokenized


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loss", choices=["dpo", "kto"], required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = json.load(sys.stdin)
    model, tokenizer = load_model(args.gguf, torch.float32)
    common = dict(
        output_dir=tempfile.mkdtemp(prefix="fedpref-trl-"), gradient_accumulation_steps=1, max_length=None,
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True, learning_rate=1e-4, beta=0.1,
        max_grad_norm=1.0, weight_decay=0.0, lr_scheduler_type="constant", warmup_steps=0,
        max_steps=args.warmup + args.steps, logging_steps=1, save_strategy="no", report_to="none",
        dataloader_num_workers=0, seed=0, precompute_ref_log_probs=True, disable_dropout=False,
    )
    if args.loss == "dpo":
        config = trl.DPOConfig(per_device_train_batch_size=args.pairs, **common)
        trainer_cls, data = trl.DPOTrainer, rows
        sequences = 2 * args.pairs
    else:
        sequences = 2 * args.pairs
        config = trl.KTOConfig(per_device_train_batch_size=sequences, **common)
        trainer_cls, data = trl.KTOTrainer, kto_rows(rows, sequences)

    class Timer(TrainerCallback):
        def __init__(self):
            self.started, self.times = None, []

        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            self.times.append(time.perf_counter() - self.started)

    timer = Timer()
    trainer = pretokenized(trainer_cls)(model=model, args=config, train_dataset=Dataset.from_list(data),
                                        processing_class=tokenizer, peft_config=lora_config(args.rank, args.dropout),
                                        callbacks=[timer])
    torch.set_num_threads(args.threads)  # in case the trainer changed it
    trainer.train()
    timed = timer.times[args.warmup:]
    seconds = statistics.median(timed)
    row = rows[0]
    tokens = sequences * (len(row["prompt_ids"]) + len(row["chosen_ids"]))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    print(json.dumps({
        "loss": args.loss,
        "s_per_step": seconds,
        "step_times": timed,
        "tokens_per_step": tokens,
        "tokens_per_s": tokens / seconds,
        "reference_s": getattr(trainer, "reference_s", float("nan")),
        "losses": losses,
        "peak_rss_mib": peak_rss_mib(),
        "threads": torch.get_num_threads(),
        "trl": trl.__version__,
        "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The deployment test (`cargo xtask test --flower`): a real Flower deployment on 127.0.0.1,
one SuperLink and three SuperNodes, each with its own client shard, trains fedpref runs with
`flwr run --stream`:

1. DPO with SCAFFOLD (client plans travel; AdamW moments kept on the nodes), KTO with
   FedAvg (reference log-probs of the KL sequences computed on the nodes), and DPO with FedAvg
   over compressed links (top-k updates with error feedback kept on the nodes, int8
   broadcasts), 2 rounds of 2 sampled clients out of 3: the final adapter equals the simulated
   `fedpref run`'s bit for bit, and the bytes on the wire are the simulated run's counts.
2. Faults: a 3-round DPO run in which one SuperNode is killed by its process id in round 1:
   the round completes with the survivors and records the lost client; then the whole
   deployment is stopped, restarted (the killed client's node now with a malformed shard), and
   `flwr run` resumes at the next round without redoing a finished one; the malformed shard's
   error reaches the server and that round goes on without it; rounds.jsonl holds one row per
   round.

Every process it starts it stops by its process group. Prints the time and the bytes per
round deployed and simulated side by side.

    python deploy/flower/tests/test_deployment.py --fedpref-bin target/debug/fedpref \
        --model assets/models/SmolLM2-135M-Instruct.Q4_1.gguf --data assets/data/dpo_en_demo.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

APP_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(APP_DIR))
from fedpref_flower.files import read_safetensors  # noqa: E402
from fedpref_flower.local import LocalFederation, processes_of, stop_group  # noqa: E402

CONFIG = """
[experiment]
name = "flower"
methods = ["{method}"]
aggregators = ["{aggregator}"]
seeds = [0]
output_dir = "{out}"

[model]
path = "{model}"

[data]
path = "{data}"
limit = 19
eval_fraction = 0.0
max_length = 64
max_prompt_length = 32

[federation]
clients = 3
clients_per_round = {per_round}
rounds = {rounds}

[training]
batch_size = 1
local_steps = 2
lr = 5e-4
lr_min = 1e-4
{training}

[lora]
rank = 8
alpha = 16
dropout = 0.05
targets = ["q_proj", "v_proj"]
{extra}
"""


class Failure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def fedpref(bin_: str, *args: str) -> dict:
    done = subprocess.run([bin_, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Failure(f"fedpref {' '.join(args)} failed:\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def write_config(work: Path, args, method: str, aggregator: str, *, rounds: int = 2,
                 per_round: int = 2, training: str = "", extra: str = "") -> Path:
    path = work / f"{method}-{aggregator}-{rounds}.toml"
    path.write_text(CONFIG.format(method=method, aggregator=aggregator, out=work / "runs",
                                  model=args.model, data=args.data, rounds=rounds,
                                  per_round=per_round, training=training, extra=extra))
    return path


def simulate(bin_: str, config: Path, run_dir: Path) -> tuple[np.ndarray, list[dict], float]:
    """`fedpref run`: the final global adapter, the round records and the wall time."""
    started = time.monotonic()
    done = subprocess.run([bin_, "run", str(config)], capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise Failure(f"fedpref run {config} failed:\n{done.stderr}")
    latest = (run_dir / "checkpoints/latest").read_text().strip()
    global_ = np.fromfile(run_dir / "checkpoints" / latest / "global.f32", dtype="<f4")
    return global_, rounds_of(run_dir / "metrics/rounds.jsonl"), seconds


def rounds_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def deployed_global(run_dir: Path) -> np.ndarray:
    tensors, _ = read_safetensors(run_dir / "global-final.safetensors")
    return tensors["params"]


def shards_of(bin_: str, config: Path, out: Path) -> dict[int, Path]:
    dealt = fedpref(bin_, "data", "shards", "--config", str(config), "--out-dir", str(out))
    return {int(s["client"]): Path(s["path"]) for s in dealt["shards"]}


def run_config(config: Path, run_dir: Path, bin_: str, round_timeout: int) -> dict[str, object]:
    return {"config": str(config), "run-dir": str(run_dir), "fedpref-bin": bin_,
            "round-timeout": round_timeout, "min-nodes": 3, "node-wait-timeout": 60}


def equal_to_simulation(federation: LocalFederation, args, work: Path, shards: dict[int, Path],
                        table: list[str]) -> None:
    compressed = ('[compression]\nuplink = "top-k"\ndownlink = "int8"\n'
                  '[codecs.top-k]\nfraction = 0.05\n')
    cases = [("dpo", "scaffold", "keep_optimizer_state = true", ""), ("kto", "fedavg", "", ""),
             ("dpo", "fedavg", "", compressed)]
    for method, aggregator, training, extra in cases:
        config = write_config(work, args, method, aggregator, training=training, extra=extra)
        name = f"{method}-{aggregator}-s0"
        # The shards each node holds are this run's (KTO deals single answers).
        for k, path in shards_of(args.fedpref_bin, config, work / f"shards-{name}").items():
            shutil.copyfile(path, shards[k])
            shutil.rmtree(Path(str(shards[k]) + ".fedpref"), ignore_errors=True)
        simulated, sim_rounds, sim_seconds = simulate(args.fedpref_bin, config,
                                                      work / "runs/flower" / name)
        run_dir = work / f"deployed-{name}"
        started = time.monotonic()
        rc = federation.run(run_config(config, run_dir, args.fedpref_bin, 300))
        seconds = time.monotonic() - started
        check(rc == 0, f"flwr run of {name} exited with {rc}")
        check((run_dir / "global-final.safetensors").is_file(),
              f"{name}: the deployed run did not finish (see {federation.home}/*.log)")
        deployed = deployed_global(run_dir)
        check(deployed.shape == simulated.shape, f"{name}: {deployed.shape} != {simulated.shape}")
        differ = int(np.sum(deployed.view("<u4") != simulated.view("<u4")))
        check(differ == 0, f"{name}: {differ} of {deployed.size} parameters differ from the simulated run")
        rows = rounds_of(run_dir / "rounds.jsonl")
        check([r["round"] for r in rows] == [0, 1], f"{name}: rounds {[r['round'] for r in rows]}")
        for dep, sim in zip(rows, sim_rounds):
            check(dep["sampled"] == sim["sampled"] and dep["trained"] == sim["trained"],
                  f"{name} round {dep['round']}: deployed {dep['trained']}, simulated {sim['trained']}")
            check(dep["bytes_up"] == sim["bytes_up"] and dep["bytes_down"] == sim["bytes_down"],
                  f"{name} round {dep['round']}: byte counts differ from the simulated run")
            # What crossed the network is what the simulated run counts: the encodings.
            check(dep["bytes_up_wire"] == sim["bytes_up"]
                  and dep["bytes_down_wire"] == sim["bytes_down"],
                  f"{name} round {dep['round']}: {dep['bytes_up_wire']} up and "
                  f"{dep['bytes_down_wire']} down on the wire, {sim['bytes_up']} and "
                  f"{sim['bytes_down']} simulated")
            table.append(
                f"{name:<20} {dep['round']:>5}  {dep['seconds']:>10.1f}  {sim['seconds']:>9.1f}  "
                f"{dep['bytes_down_wire'] / 1e6:>9.3f}  {dep['bytes_up_wire'] / 1e6:>9.3f}  "
                f"{sim['bytes_down'] / 1e6:>9.3f}  {sim['bytes_up'] / 1e6:>9.3f}"
            )
        print(f"{name}: deployed equals simulated bit for bit ({deployed.size} parameters); "
              f"{seconds:.1f} s deployed (with start-up), {sim_seconds:.1f} s simulated", flush=True)


def wait_for(path: Path, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise Failure(f"flwr run ended (status {proc.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            raise Failure(f"{path} did not appear within {timeout:.0f} s")
        time.sleep(0.2)


def killed_node_and_restart(federation: LocalFederation, args, work: Path,
                            shards: dict[int, Path]) -> None:
    config = write_config(work, args, "dpo", "fedavg", rounds=3, per_round=3)
    for k, path in shards_of(args.fedpref_bin, config, work / "shards-faults").items():
        shutil.copyfile(path, shards[k])
        shutil.rmtree(Path(str(shards[k]) + ".fedpref"), ignore_errors=True)
    run_dir = work / "deployed-faults"
    settings = run_config(config, run_dir, args.fedpref_bin, 60)
    federation.start(shards)
    flwr = federation.run(settings, wait=False)
    try:
        # Round 1 is planned: its globals are written before any message is sent.
        wait_for(run_dir / "round-0001/global-1.safetensors", 300, flwr)
        federation.kill_node(1)
        wait_for(run_dir / "state-0002.safetensors", 300, flwr)
        finished = {name: (run_dir / name).read_bytes()
                    for name in ("state-0001.safetensors", "state-0002.safetensors")}
    finally:
        # The whole deployment goes down mid-run (round 2 may have started).
        federation.stop()
        stop_group(flwr, grace=0)
    rows = rounds_of(run_dir / "rounds.jsonl")
    check([r["round"] for r in rows] == [0, 1], f"after the stop: rounds {[r['round'] for r in rows]}")
    lost = rows[1]
    check(1 not in lost["trained"] and sorted(lost["trained"]) == [0, 2],
          f"round 1 trained {lost['trained']}, expected the survivors [0, 2]")
    check(any(u["client"] == 1 for u in lost["unreachable"]),
          f"round 1 does not record client 1 as lost: {lost['unreachable']}")
    print(f"round 1 went on without the killed node: {lost['unreachable']}", flush=True)

    # Client 1's node comes back with a malformed shard: it reports the error and round 2
    # goes on without it.
    shards[1].write_text("not json\n")
    federation.start(shards)
    rc = federation.run(settings)
    check(rc == 0, f"the resumed flwr run exited with {rc}")
    check((run_dir / "global-final.safetensors").is_file(), "the resumed run did not finish")
    for name, content in finished.items():
        check((run_dir / name).read_bytes() == content, f"{name} changed: a finished round was redone")
    rows = rounds_of(run_dir / "rounds.jsonl")
    check([r["round"] for r in rows] == [0, 1, 2], f"after the restart: rounds {[r['round'] for r in rows]}")
    check(sorted(rows[2]["trained"]) == [0, 2], f"round 2 trained {rows[2]['trained']}")
    reasons = [u["reason"] for u in rows[2]["unreachable"] if u["client"] == 1]
    check(len(reasons) == 1 and "client-1.shard.jsonl" in reasons[0] and "line 1" in reasons[0],
          f"round 2 does not report client 1's malformed shard: {rows[2]['unreachable']}")
    print(f"the restarted deployment resumed at round 2 without the node whose shard is "
          f"malformed ({reasons[0]}) and finished", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fedpref-bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", default="", help="scratch folder (default: a new temporary one, removed on success)")
    args = ap.parse_args()
    args.fedpref_bin = str(Path(args.fedpref_bin).resolve())
    args.model = str(Path(args.model).resolve())
    args.data = str(Path(args.data).resolve())
    work = Path(args.work or tempfile.mkdtemp(prefix="fedpref-flower-test-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    nodes_dir = work / "nodes"
    nodes_dir.mkdir(exist_ok=True)
    shards = {k: nodes_dir / f"client-{k}.shard.jsonl" for k in range(3)}
    federation = LocalFederation(work / "flwr-home", work, args.fedpref_bin)
    table = [f"{'run':<20} {'round':>5}  {'s (Flower)':>10}  {'s (sim)':>9}  "
             f"{'MB down':>9}  {'MB up':>9}  {'MB down':>9}  {'MB up':>9}",
             f"{'':<20} {'':>5}  {'':>10}  {'':>9}  {'(wire)':>9}  {'(wire)':>9}  {'(sim)':>9}  {'(sim)':>9}"]
    started = time.monotonic()
    try:
        # Each node's shard file is in place before its SuperNode starts; the cases refill them.
        for k, path in shards_of(args.fedpref_bin, write_config(work, args, "dpo", "scaffold"),
                                 work / "shards-initial").items():
            shutil.copyfile(path, shards[k])
        federation.start(shards)
        equal_to_simulation(federation, args, work, shards, table)
        federation.stop()
        killed_node_and_restart(federation, args, work, shards)
    except Failure as failure:
        print(f"FAILED: {failure}\n(work folder kept: {work}; Flower logs in {federation.home})",
              file=sys.stderr)
        return 1
    finally:
        federation.stop()
    time.sleep(1)
    left = processes_of(federation.home)
    if left:
        print(f"FAILED: processes of the deployment left running: {left}", file=sys.stderr)
        return 1
    print("\n".join(table))
    print(f"deployment test passed in {time.monotonic() - started:.0f} s")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

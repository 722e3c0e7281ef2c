#!/usr/bin/env python3
"""Start a local Flower deployment (1 SuperLink + one SuperNode per fedpref client) on free
loopback ports, run the fedpref app on it with `flwr run --stream`, and stop everything.

    python deploy/flower/run_local.py --config exp.toml --shards-dir shards/ \
        --run-dir /abs/runs/flower --fedpref-bin /abs/target/debug/fedpref

Run it with the Python of the environment that has flwr (its bin/ provides flower-superlink,
flower-supernode and flwr). Shards are `<shards-dir>/client-<k>.shard.jsonl`
(`fedpref data shards --config exp.toml --out-dir shards/`). Logs go to <flwr-home>/*.log.
Exit status: 0 when the run finished (run-dir/global-final.safetensors written), else non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fedpref_flower.local import LocalFederation  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="the fedpref TOML")
    ap.add_argument("--shards-dir", required=True, help="folder with client-<k>.shard.jsonl")
    ap.add_argument("--clients", type=int, help="number of SuperNodes (default: every shard found)")
    ap.add_argument("--run-dir", required=True, help="server-side output folder")
    ap.add_argument("--fedpref-bin", default="fedpref")
    ap.add_argument("--run", default="", help="the sweep's run to train (e.g. dpo-fedavg-s0)")
    ap.add_argument("--set", action="append", default=[], help="fedpref KEY=VALUE (repeatable)")
    ap.add_argument("--plugin-dir", default="", help="extra plugin folder (server and nodes)")
    ap.add_argument("--model-path", default="", help="node-side model.path override")
    ap.add_argument("--round-timeout", type=int, default=600)
    ap.add_argument("--flwr-home", default="", help="Flower home for every process (default: a temp dir)")
    ap.add_argument("--workdir", default=os.getcwd(), help="working directory of every process (default: here)")
    args = ap.parse_args()

    workdir = Path(args.workdir).resolve()
    abspath = lambda p: str((workdir / Path(p).expanduser()).resolve())  # noqa: E731
    client_of = lambda p: int(p.name.split("-")[1].split(".")[0])  # noqa: E731
    shards = {client_of(p): p for p in Path(abspath(args.shards_dir)).glob("client-*.shard.jsonl")}
    if args.clients is not None:
        shards = {k: p for k, p in shards.items() if k < args.clients}
    if not shards:
        print(f"no client-<k>.shard.jsonl in {args.shards_dir}", file=sys.stderr)
        return 2
    fedpref_bin = abspath(args.fedpref_bin) if os.sep in args.fedpref_bin else args.fedpref_bin
    home = Path(args.flwr_home or tempfile.mkdtemp(prefix="fedpref-flwr-"))
    federation = LocalFederation(home, workdir, fedpref_bin)
    node_extra = {}
    if args.plugin_dir:
        node_extra["plugin-dir"] = abspath(args.plugin_dir)
    if args.model_path:
        node_extra["model-path"] = abspath(args.model_path)
    run_config: dict[str, object] = {
        "config": abspath(args.config),
        "run-dir": abspath(args.run_dir),
        "fedpref-bin": fedpref_bin,
        "workdir": str(workdir),
        "round-timeout": args.round_timeout,
        "min-nodes": len(shards),
    }
    if args.run:
        run_config["run"] = args.run
    if args.set:
        run_config["set"] = ";".join(args.set)
    if args.plugin_dir:
        run_config["plugin-dir"] = abspath(args.plugin_dir)
    try:
        federation.start(shards, node_extra)
        started = time.time()
        rc = federation.run(run_config)
        # `flwr run --stream` exits 0 even when the ServerApp raised: judge by the output.
        final = Path(abspath(args.run_dir)) / "global-final.safetensors"
        if rc == 0 and not (final.exists() and final.stat().st_mtime >= started - 1):
            print(f"the run did not finish: no new {final} (see the log above)", file=sys.stderr)
            rc = 1
        return rc
    finally:
        federation.stop()


if __name__ == "__main__":
    sys.exit(main())

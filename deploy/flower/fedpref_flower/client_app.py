"""ClientApp: one fedpref client per SuperNode, trained with `fedpref client train`.

Node config (`flower-supernode --node-config 'data-path="..." client-id=0'`, or a TOML file):
  data-path    this node's shard (`fedpref data shards` writes client-<k>.shard.jsonl)   required
  client-id    the fedpref client id the shard belongs to (int)                          required
  fedpref-bin  the fedpref executable (default: the run config's `fedpref-bin`, then PATH)
  model-path   the model on this node: replaces `model.path` of the config the server sends
  plugin-dir   extra plugin folder(s), `;`-separated (passed as `--plugin-dir`)
  state-dir    where the node keeps its files (default: `<data-path>.fedpref/`)
  workdir      working directory for fedpref (default: the SuperNode's); relative paths in the
               received config resolve against it

Under `<state-dir>/<run>/`: config.toml and global.safetensors (the last ones received),
reference.bin (fedpref's reference log-prob cache), client-state-RRRR.safetensors (the
optimizer state kept after round RRRR, when the config keeps one) and update-RRRR.* (the
last update sent).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from .common import (
    CONFIG_RECORD,
    GLOBAL_RECORD,
    RESULT_RECORD,
    UPDATE_RECORD,
    FedprefError,
    arrays_to_record,
    get_logger,
    record_to_arrays,
    resolve_bin,
    run_fedpref,
)
from .files import read_safetensors, write_safetensors, write_text_atomic

log = get_logger("fedpref.client")

app = ClientApp()

CLIENT_STATE_RE = re.compile(r"^client-state-(\d{4,})\.safetensors$")


@dataclass
class NodeSettings:
    client_id: int
    data_path: Path
    fedpref_bin: str
    model_path: str
    plugin_dirs: list[str]
    state_dir: Path
    workdir: Path

    @classmethod
    def from_context(cls, context: Context) -> "NodeSettings":
        nc = dict(context.node_config)
        rc = dict(context.run_config)
        workdir = Path(str(nc.get("workdir", "") or os.getcwd())).expanduser().resolve()

        def path(value: str) -> Path:
            p = Path(value).expanduser()
            return p if p.is_absolute() else workdir / p

        if "client-id" not in nc or "data-path" not in nc:
            raise ValueError(
                "this SuperNode needs node config `client-id` and `data-path`, e.g. "
                "--node-config 'client-id=0 data-path=\"/data/client-0.shard.jsonl\"' "
                f"(it has: {sorted(nc)})"
            )
        try:
            client_id = int(nc["client-id"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"node config client-id={nc['client-id']!r} is not an integer") from err
        data_path = path(str(nc["data-path"]))
        state_dir = str(nc.get("state-dir", "") or "")
        model_path = str(nc.get("model-path", "") or "")
        return cls(
            client_id=client_id,
            data_path=data_path,
            fedpref_bin=resolve_bin(
                str(nc.get("fedpref-bin", "") or rc.get("fedpref-bin", "") or "fedpref"), workdir
            ),
            model_path=str(path(model_path)) if model_path else "",
            plugin_dirs=[str(path(p.strip())) for p in str(nc.get("plugin-dir", "")).split(";") if p.strip()],
            state_dir=path(state_dir) if state_dir else Path(str(data_path) + ".fedpref"),
            workdir=workdir,
        )

    def fedpref(self, *args: str) -> list[str]:
        argv = [self.fedpref_bin]
        for d in self.plugin_dirs:
            argv += ["--plugin-dir", d]
        return argv + list(args)


def reply(msg: Message, result: dict[str, Any], update: dict | None = None) -> Message:
    records: dict[str, Any] = {RESULT_RECORD: ConfigRecord(result)}
    if update is not None:
        records[UPDATE_RECORD] = arrays_to_record(update)
    return Message(RecordDict(records), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Which client this node serves and how many units its shard holds."""
    try:
        client_id = int(context.node_config.get("client-id", -1))
    except (TypeError, ValueError):
        client_id = -1
    try:
        s = NodeSettings.from_context(context)
        out = run_fedpref(s.fedpref("client", "check", "--client-data", str(s.data_path)),
                          log, cwd=s.workdir)
        units = int(out["units"])
    except Exception as err:  # reported to the server, which excludes this node
        log.error("query: %s", err)
        return reply(msg, {"client-id": client_id, "error": str(err)})
    log.info("query: client %d, %d units in %s", s.client_id, units, s.data_path)
    return reply(msg, {"client-id": s.client_id, "units": units, "data-path": str(s.data_path)})


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One round of local training on the received global; replies with the update."""
    try:
        s = NodeSettings.from_context(context)
    except Exception as err:
        log.error("train: %s", err)
        return reply(msg, {"client-id": -1, "error": str(err)})
    try:
        return train_inner(msg, s)
    except Exception as err:  # the round goes on without this node
        log.error("train (client %d): %s", s.client_id, err)
        if isinstance(err, FedprefError):
            log.error("  the command: %s", err.command())
        return reply(msg, {"client-id": s.client_id, "error": str(err)})


def train_inner(msg: Message, s: NodeSettings) -> Message:
    cfg = msg.content[CONFIG_RECORD]
    r = int(cfg["round"])
    client = int(cfg["client"])
    run = str(cfg["run"])
    if client != s.client_id:
        raise ValueError(f"asked to train client {client}, but this node serves client {s.client_id}")
    run_dir = s.state_dir / re.sub(r"[^A-Za-z0-9._-]", "_", run)
    run_dir.mkdir(parents=True, exist_ok=True)

    # Optimizer state kept from another experiment with the same run name is not ours.
    marker = run_dir / "experiment-id"
    experiment = str(cfg.get("experiment-id", ""))
    if not marker.exists() or marker.read_text().strip() != experiment:
        for old in run_dir.glob("client-state-*.safetensors"):
            log.info("dropping %s (from another experiment)", old)
            old.unlink()
        write_text_atomic(marker, experiment + "\n")

    config = run_dir / "config.toml"
    write_text_atomic(config, str(cfg["config-toml"]))
    metadata = json.loads(str(cfg.get("global-metadata", "{}")) or "{}")
    global_path = run_dir / "global.safetensors"
    write_safetensors(global_path, record_to_arrays(msg.content[GLOBAL_RECORD]), metadata)

    # The newest state kept before this round (a retried round does not see its own).
    kept = sorted(
        (int(m.group(1)), p)
        for p in run_dir.iterdir()
        if (m := CLIENT_STATE_RE.match(p.name)) and int(m.group(1)) < r
    )
    out = run_dir / f"update-{r:04d}"
    for suffix in (".json", ".safetensors", ".state.safetensors"):
        Path(str(out) + suffix).unlink(missing_ok=True)

    argv = ["client", "train", "--config", str(config), "--client", str(s.client_id),
            "--global", str(global_path), "--client-data", str(s.data_path), "--round", str(r)]
    if kept:
        argv += ["--state", str(kept[-1][1])]
    argv += ["--reference-cache", str(run_dir / "reference.bin"), "--out", str(out)]
    if s.model_path:
        argv += ["--set", f"model.path={s.model_path}"]
    log.info("round %d: training client %d (%s)", r, s.client_id, run)
    printed = run_fedpref(s.fedpref(*argv), log, cwd=s.workdir)

    info_path = Path(str(out) + ".json")
    info = info_path.read_text() if info_path.exists() else json.dumps(printed)
    params_path = Path(str(out) + ".safetensors")
    update = None
    if params_path.exists():
        tensors, _ = read_safetensors(params_path)
        # `params` (f32), or with a codec configured `update` (the encoded change, bytes).
        sent = [name for name in ("params", "update") if name in tensors]
        if not sent:
            raise ValueError(f"{params_path} has no `params` or `update` tensor (has {sorted(tensors)})")
        update = {sent[0]: tensors[sent[0]]}
    state_path = Path(str(out) + ".state.safetensors")
    if state_path.exists():
        os.replace(state_path, run_dir / f"client-state-{r:04d}.safetensors")
        for _, old in kept[:-1]:  # keep the one this round started from, for a retry
            old.unlink(missing_ok=True)
    for old in run_dir.glob("update-*"):
        if not old.name.startswith(out.name):
            old.unlink(missing_ok=True)
    log.info("round %d: client %d done%s", r, s.client_id, "" if update is not None else " (no update: dropped out)")
    return reply(msg, {"client-id": s.client_id, "info": info}, update)

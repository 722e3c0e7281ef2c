"""ServerApp: runs one fedpref run's rounds over the Flower Grid.

Each round: `fedpref server plan` (which clients, what global each gets), one "train"
message per sampled client to the node that serves it, the replies written as update files,
then `fedpref server aggregate` (which checks the updates, aggregates and writes the next
server state). Flower's own client sampling and strategies are not used.

Files under run-dir (see README.md):
  config.toml                the run's resolved fedpref config (`server init --config-out`)
  flower-run.json            what this run-dir was initialized from (checked on resume)
  state-RRRR.safetensors     the server state before round RRRR (fedpref writes it)
  round-RRRR/                the plan's globals, the updates received, global-next, record
  rounds.jsonl               one round record per finished round, with the Flower fields
  global-final.safetensors   the global after the last round
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from .common import (
    CONFIG_RECORD,
    GLOBAL_RECORD,
    RESULT_RECORD,
    UPDATE_RECORD,
    FedprefError,
    arrays_to_record,
    get_logger,
    record_bytes,
    record_to_arrays,
    resolve_bin,
    run_fedpref,
)
from .files import copy_atomic, read_safetensors, write_safetensors, write_text_atomic

log = get_logger("fedpref.server")

app = ServerApp()

STATE_RE = re.compile(r"^state-(\d{4,})\.safetensors$")
POLL_S = 0.5  # seconds between pulls while waiting for replies


@dataclass
class Settings:
    """The run config ([tool.flwr.app.config], overridden by `flwr run --run-config`)."""

    fedpref_bin: str
    config: Path
    run: str
    sets: list[str]
    run_dir: Path
    round_timeout: float
    min_nodes: int
    node_wait_timeout: float
    plugin_dirs: list[str]
    workdir: Path

    @classmethod
    def from_run_config(cls, rc: dict[str, Any]) -> "Settings":
        workdir = Path(str(rc.get("workdir", "") or os.getcwd())).expanduser().resolve()

        def path(key: str, default: str) -> Path:
            value = str(rc.get(key, default) or default)
            p = Path(value).expanduser()
            return p if p.is_absolute() else (workdir / p)

        if not str(rc.get("config", "")).strip():
            raise ValueError("run config `config` (the fedpref TOML) is not set")
        sets = [s.strip() for s in str(rc.get("set", "")).split(";") if s.strip()]
        for s in sets:
            if "=" not in s:
                raise ValueError(f"run config `set`: {s!r} is not KEY=VALUE")
        plugin_dirs = [
            str(path_of(p, workdir))
            for p in str(rc.get("plugin-dir", "")).split(";")
            if p.strip()
        ]
        return cls(
            fedpref_bin=resolve_bin(str(rc.get("fedpref-bin", "fedpref")), workdir),
            config=path("config", ""),
            run=str(rc.get("run", "")).strip(),
            sets=sets,
            run_dir=path("run-dir", "runs/flower"),
            round_timeout=float(rc.get("round-timeout", 600)),
            min_nodes=int(rc.get("min-nodes", 0)),
            node_wait_timeout=float(rc.get("node-wait-timeout", 120)),
            plugin_dirs=plugin_dirs,
            workdir=workdir,
        )

    def fedpref(self, *args: str) -> list[str]:
        argv = [self.fedpref_bin]
        for d in self.plugin_dirs:
            argv += ["--plugin-dir", d]
        return argv + list(args)


def path_of(value: str, base: Path) -> Path:
    p = Path(value.strip()).expanduser()
    return p if p.is_absolute() else base / p


@dataclass
class Nodes:
    """Which connected node serves which fedpref client."""

    by_client: dict[int, int] = field(default_factory=dict)  # client id -> node id
    info: dict[int, dict[str, Any]] = field(default_factory=dict)  # node id -> query reply
    failed: dict[int, str] = field(default_factory=dict)  # node id -> why it is excluded
    failed_clients: dict[int, str] = field(default_factory=dict)  # client id -> why


# --------------------------------------------------------------------------------------------
# The main loop


@app.main()
def main(grid: Grid, context: Context) -> None:
    try:
        run(grid, context)
    except FedprefError as err:
        log.error("%s", err)
        log.error("the command: %s", err.command())
        raise


def run(grid: Grid, context: Context) -> None:
    started = time.monotonic()
    settings = Settings.from_run_config(dict(context.run_config))
    fedpref = settings.fedpref
    log.info(
        "fedpref on Flower: config %s, run %s, run-dir %s, fedpref %s (working dir %s)",
        settings.config,
        settings.run or "(the config's only run)",
        settings.run_dir,
        settings.fedpref_bin,
        settings.workdir,
    )
    run_dir = settings.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "config.toml"

    meta = initialize(settings, run_dir, config)
    experiment_id = meta["experiment_id"]
    run_name = meta["init"]["run"]
    n_clients = int(meta["init"]["clients"])
    round_index = newest_state(run_dir)
    if round_index is None:
        raise RuntimeError(
            f"{run_dir} has config.toml but no state-RRRR.safetensors; "
            "delete the run-dir to start over"
        )
    repair_rounds_log(run_dir, round_index)
    if round_index > 0:
        log.info("resuming %s before round %d (state-%04d.safetensors)", run_name, round_index, round_index)

    nodes = Nodes()
    wait_for_nodes(grid, settings.min_nodes or n_clients, settings.node_wait_timeout)
    refresh_nodes(grid, nodes, settings.node_wait_timeout)

    while True:
        state = run_dir / f"state-{round_index:04d}.safetensors"
        round_dir = run_dir / f"round-{round_index:04d}"
        round_dir.mkdir(exist_ok=True)
        plan = run_fedpref(
            fedpref("server", "plan", "--config", str(config), "--state", str(state),
                    "--out-dir", str(round_dir)),
            log,
            cwd=settings.workdir,
        )
        if plan.get("done"):
            try:
                round_dir.rmdir()  # the plan writes nothing once the run is done
            except OSError:
                pass
            break
        r = int(plan["round"])
        if r != round_index:
            log.warning("state-%04d.safetensors plans round %d; numbering by the plan", round_index, r)
        run_round(grid, settings, nodes, plan, state, round_dir, config,
                           run_name, experiment_id, r)
        round_index = r + 1

    finish(run_dir, round_index, started)


def initialize(settings: Settings, run_dir: Path, config: Path) -> dict[str, Any]:
    """`server init` into run-dir unless it was initialized; returns flower-run.json."""
    meta_path = run_dir / "flower-run.json"
    wanted = {
        "config": str(settings.config.resolve()),
        "run": settings.run,
        "set": settings.sets,
    }
    if config.exists():
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
        if meta is None:
            raise RuntimeError(f"{run_dir} has config.toml but no flower-run.json; delete the run-dir to start over")
        was = {k: meta.get(k) for k in wanted}
        if was != wanted:
            raise RuntimeError(
                f"{run_dir} was initialized from {json.dumps(was)}, not {json.dumps(wanted)}; "
                "use another run-dir, or delete this one to start over"
            )
        log.info("run-dir %s holds run %s (%s rounds, %s clients)", run_dir,
                 meta["init"]["run"], meta["init"]["rounds"], meta["init"]["clients"])
        return meta

    # Write into a scratch folder, then move the state and (last) the config into place:
    # config.toml existing means the run-dir is initialized.
    scratch = run_dir / ".init"
    scratch.mkdir(exist_ok=True)
    argv = ["server", "init", "--config", str(settings.config)]
    for s in settings.sets:
        argv += ["--set", s]
    if settings.run:
        argv += ["--run", settings.run]
    argv += ["--config-out", str(scratch / "config.toml"),
             "--state-out", str(scratch / "state-0000.safetensors")]
    init = run_fedpref(settings.fedpref(*argv), log, cwd=settings.workdir)
    meta = dict(wanted, init=init, experiment_id=uuid.uuid4().hex[:12])
    os.replace(scratch / "state-0000.safetensors", run_dir / "state-0000.safetensors")
    write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
    os.replace(scratch / "config.toml", config)
    try:
        scratch.rmdir()
    except OSError:
        pass
    log.info(
        "initialized %s: run %s, %s rounds, %s clients, %s trainable parameters",
        run_dir, init.get("run"), init.get("rounds"), init.get("clients"), init.get("n_params"),
    )
    return meta


def newest_state(run_dir: Path) -> int | None:
    rounds = [int(m.group(1)) for p in run_dir.iterdir() if (m := STATE_RE.match(p.name))]
    return max(rounds) if rounds else None


def repair_rounds_log(run_dir: Path, round_index: int) -> None:
    """Make rounds.jsonl hold exactly the records of rounds before `round_index`: rows of
    later rounds are cut, and a finished round whose row is missing (the server stopped
    between the state and the row) gets its row back from round-RRRR/record.json."""
    path = run_dir / "rounds.jsonl"
    rows: dict[int, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                r = int(row["round"])
            except (ValueError, KeyError, TypeError):
                continue
            if r < round_index:
                rows[r] = json.dumps(row)
    for r in range(round_index):
        saved = run_dir / f"round-{r:04d}" / "record.json"
        if r not in rows and saved.exists():
            rows[r] = json.dumps(json.loads(saved.read_text()))
            log.info("rounds.jsonl: restored the row of round %d", r)
    text = "".join(rows[r] + "\n" for r in sorted(rows))
    if not path.exists() or path.read_text() != text:
        write_text_atomic(path, text)


# --------------------------------------------------------------------------------------------
# Nodes


def wait_for_nodes(grid: Grid, need: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    next_note = 0.0
    while True:
        ids = list(grid.get_node_ids())
        if len(ids) >= need:
            log.info("%d node(s) connected", len(ids))
            return
        now = time.monotonic()
        if now >= deadline:
            if not ids:
                raise RuntimeError(f"no node connected within {timeout:.0f} s")
            log.warning("only %d of %d node(s) connected after %.0f s; going on",
                        len(ids), need, timeout)
            return
        if now >= next_note:
            log.info("waiting for nodes: %d of %d connected", len(ids), need)
            next_note = now + 10
        time.sleep(1)


def refresh_nodes(grid: Grid, nodes: Nodes, timeout: float) -> None:
    """Forget nodes that left; ask new nodes which client they serve ("query")."""
    online = set(grid.get_node_ids())
    for node in list(nodes.info):
        if node not in online:
            client = nodes.info.pop(node)["client-id"]
            nodes.by_client.pop(client, None)
            log.warning("node %d (client %d) left", node, client)
    new = sorted(online - set(nodes.info) - set(nodes.failed))
    if not new:
        return
    messages = {
        node: Message(RecordDict({}), dst_node_id=node, message_type="query",
                      ttl=max(timeout, 60) + 30)
        for node in new
    }
    replies, missing = exchange(grid, messages, timeout, "query")
    for node in missing:
        log.warning("node %d did not answer the query within %.0f s; asking again next round",
                    node, timeout)
    for node, reply in replies.items():
        error = reply_error(reply)
        result = dict(reply.content[RESULT_RECORD]) if error is None else {}
        client = result.get("client-id")
        if error is None and result.get("error"):
            error = str(result["error"])
        if error is None and not isinstance(client, int):
            error = f"reply has no client-id: {result}"
        if error is None and client in nodes.by_client:
            error = f"client {client} is already served by node {nodes.by_client[client]}"
        if error is not None:
            nodes.failed[node] = error
            if isinstance(client, int) and client >= 0:
                nodes.failed_clients[client] = f"its node {node} was excluded: {error}"
            log.error("node %d (client %s) excluded: %s", node, client, error)
            continue
        nodes.failed_clients.pop(client, None)
        nodes.by_client[client] = node
        nodes.info[node] = result
        log.info("node %d serves client %d (%s units, %s)", node, client,
                 result.get("units"), result.get("data-path", "?"))


def exchange(
    grid: Grid, messages: dict[Any, Message], timeout: float, what: str
) -> tuple[dict[Any, Message], list[Any]]:
    """Push `messages` (key -> message), pull replies until all came or `timeout` passed.
    Returns (key -> reply, keys without a reply)."""
    keys = list(messages)
    ids = list(grid.push_messages([messages[k] for k in keys]))
    pending: dict[str, Any] = {}
    missing: list[Any] = []
    for key, mid in zip(keys, ids):
        if mid:
            pending[mid] = key
        else:
            log.error("%s message to %s could not be pushed", what, key)
            missing.append(key)
    replies: dict[Any, Message] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for reply in grid.pull_messages(list(pending)):
            key = pending.pop(reply.metadata.reply_to_message_id, None)
            if key is None:
                continue
            replies[key] = reply
            log.debug("%s reply for %s (%d left)", what, key, len(pending))
        if pending:
            time.sleep(POLL_S)
    return replies, missing + list(pending.values())


def reply_error(reply: Message) -> str | None:
    """Flower's error on a reply (node unreachable, ClientApp raised, ...), else None."""
    if reply.has_error():
        return f"Flower error {reply.error.code}: {reply.error.reason}"
    if not reply.has_content() or RESULT_RECORD not in reply.content:
        return "reply without a result record"
    return None


# --------------------------------------------------------------------------------------------
# One round


def run_round(
    grid: Grid,
    settings: Settings,
    nodes: Nodes,
    plan: dict[str, Any],
    state: Path,
    round_dir: Path,
    config: Path,
    run_name: str,
    experiment_id: str,
    r: int,
) -> dict[str, Any]:
    started = time.monotonic()
    rounds_total = int(plan.get("rounds", 0))
    sampled = [int(k) for k in plan.get("sampled", [])]
    globals_ = {int(k): Path(v) for k, v in (plan.get("globals") or {}).items()}
    for old in round_dir.glob("update-*"):  # a retried round: drop the last attempt's files
        old.unlink()

    refresh_nodes(grid, nodes, settings.node_wait_timeout)
    log.info("round %d/%d: sampled clients %s (lr %s)", r, rounds_total, sampled, plan.get("lr"))

    config_text = config.read_text()
    unreachable: list[dict[str, Any]] = []
    messages: dict[int, Message] = {}
    bytes_down = 0
    loaded: dict[Path, tuple[dict, dict]] = {}
    ttl = settings.round_timeout + 60
    for k in sampled:
        node = nodes.by_client.get(k)
        if node is None:
            reason = nodes.failed_clients.get(k, "no connected node serves this client")
            unreachable.append({"client": k, "reason": reason})
            continue
        if k not in globals_:
            unreachable.append({"client": k, "reason": "the plan gave this client no global"})
            continue
        gpath = globals_[k]
        if gpath not in loaded:
            loaded[gpath] = read_safetensors(gpath)
        tensors, metadata = loaded[gpath]
        arrays = arrays_to_record(tensors)
        cfg = ConfigRecord({
            "round": r,
            "client": k,
            "run": run_name,
            "experiment-id": experiment_id,
            "config-toml": config_text,
            "global-metadata": json.dumps(metadata),
        })
        if "prox_mu" in metadata:
            cfg["prox_mu"] = str(metadata["prox_mu"])
        bytes_down += record_bytes(arrays)
        messages[k] = Message(
            RecordDict({GLOBAL_RECORD: arrays, CONFIG_RECORD: cfg}),
            dst_node_id=node,
            message_type="train",
            group_id=str(r),
            ttl=ttl,
        )

    replies, missing = exchange(grid, messages, settings.round_timeout, "train") if messages else ({}, [])
    for k in missing:
        unreachable.append({"client": k, "reason": f"no reply within {settings.round_timeout:.0f} s"})

    prefixes: list[str] = []
    bytes_up = 0
    for k in sorted(replies):
        reply = replies[k]
        error = reply_error(reply)
        result = dict(reply.content[RESULT_RECORD]) if error is None else {}
        if error is None and result.get("error"):
            error = str(result["error"])
        if error is None and result.get("client-id") != k:
            error = f"reply is for client {result.get('client-id')}, not {k}"
        if error is None and not isinstance(result.get("info"), str):
            error = "reply has no update info"
        if error is not None:
            log.error("round %d: client %d failed: %s", r, k, error)
            unreachable.append({"client": k, "reason": error})
            continue
        prefix = round_dir / f"update-{k}"
        if UPDATE_RECORD in reply.content:
            update = reply.content[UPDATE_RECORD]
            bytes_up += record_bytes(update)
            write_safetensors(prefix.with_suffix(".safetensors"), record_to_arrays(update))
        write_text_atomic(prefix.with_suffix(".json"), result["info"])
        prefixes.append(str(prefix))

    if sampled and not replies_with_result(replies):
        # Not one sampled client answered (the nodes are gone, or the network is): recording
        # the round as skipped would spend it; stop instead, so a restart runs it.
        raise RuntimeError(
            f"round {r}: no sampled client could be reached ({unreachable}); stopping before "
            f"the round is recorded: start the nodes and run again to resume at round {r}"
        )

    # Aggregate into the round folder, keep the record there, then publish the state:
    # state-(r+1) existing means round r is finished.
    state_next_tmp = round_dir / "state-next.safetensors"
    argv = ["server", "aggregate", "--config", str(config), "--state", str(state)]
    if prefixes:
        argv += ["--updates", *prefixes]
    argv += ["--out", str(round_dir / "global-next.safetensors"), "--state-out", str(state_next_tmp)]
    record = run_fedpref(settings.fedpref(*argv), log, cwd=settings.workdir)
    record["unreachable"] = sorted(unreachable, key=lambda u: u["client"])
    record["seconds"] = round(time.monotonic() - started, 3)
    record["bytes_down_wire"] = bytes_down
    record["bytes_up_wire"] = bytes_up
    write_text_atomic(round_dir / "record.json", json.dumps(record) + "\n")
    os.replace(state_next_tmp, settings.run_dir / f"state-{r + 1:04d}.safetensors")
    with open(settings.run_dir / "rounds.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
    log.info(summary(record, r, rounds_total))
    return record


def replies_with_result(replies: dict[int, Message]) -> bool:
    """Whether any reply came from a running ClientApp (an update, or fedpref's own error)."""
    return any(reply_error(reply) is None for reply in replies.values())


def summary(record: dict[str, Any], r: int, rounds_total: int) -> str:
    def ids(key: str) -> str:
        items = record.get(key) or []
        return ",".join(str(x["client"] if isinstance(x, dict) else x) for x in items) or "-"

    train = record.get("train") or {}
    metrics = " ".join(
        f"{k}={v:.4g}" for k, v in train.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    skipped = f" skipped: {record['skipped']}" if record.get("skipped") else ""
    return (
        f"round {r}/{rounds_total} done in {record['seconds']:.1f} s: trained {ids('trained')} "
        f"rejected {ids('rejected')} dropped {ids('dropped')} unreachable {ids('unreachable')}; "
        f"wire down {record['bytes_down_wire'] / 1e6:.2f} MB up {record['bytes_up_wire'] / 1e6:.2f} MB"
        f"{skipped}{(' | ' + metrics) if metrics else ''}"
    )


def finish(run_dir: Path, rounds_done: int, started: float) -> None:
    final = run_dir / "global-final.safetensors"
    source = None
    for r in range(rounds_done - 1, -1, -1):
        candidate = run_dir / f"round-{r:04d}" / "global-next.safetensors"
        if candidate.exists():
            source = candidate
            break
    if source is None:
        log.warning("no round finished in %s, so there is no final global", run_dir)
        return
    copy_atomic(source, final)
    log.info("run finished: %d round(s), %.1f s in this session; final global: %s; rounds: %s",
             rounds_done, time.monotonic() - started, final, run_dir / "rounds.jsonl")

"""A Flower deployment on this machine: one SuperLink and one SuperNode per fedpref client on
free loopback ports, each process in a session of its own so that stopping it by its id also
stops the `flower-superexec` and app processes it started. Used by `run_local.py` and by the
deployment test (`tests/test_deployment.py`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

APP_DIR = Path(__file__).resolve().parent.parent
CONNECTION = "fedpref-local"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wait_port(port: int, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (children first found, then theirs)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(), [])
        found.extend(children)
        queue.extend(children)
    return found


def processes_of(home: Path) -> list[int]:
    """Processes whose environment has `FLWR_HOME=home`: everything a deployment started,
    wherever Flower re-parented it."""
    marker = f"FLWR_HOME={home}".encode() + b"\0"
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes() + b"\0":
                found.append(int(environ.parent.name))
        except OSError:
            continue  # another user's process, or one that ended while we looked
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process's group, then SIGKILL whatever is left after `grace` seconds, and
    every process it started: Flower starts some (the ServerApp under the SuperLink) in
    sessions of their own, which the group signal does not reach."""
    below = descendants(proc.pid)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # children (flower-superexec, app processes) share the group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    kill_pids(below + descendants(proc.pid))
    proc.wait()


class LocalFederation:
    """SuperLink and SuperNodes under `home` (FLWR_HOME, logs, a copy of the app)."""

    def __init__(self, home: Path, workdir: Path, fedpref_bin: str):
        self.home = home.resolve()
        self.workdir = workdir.resolve()
        self.fedpref_bin = fedpref_bin
        bindir = Path(sys.executable).parent
        self.exe = {
            n: str(bindir / n) if (bindir / n).exists() else n
            for n in ("flower-superlink", "flower-supernode", "flwr")
        }
        # SuperLink and SuperNodes start `flower-superexec` (and it the apps) from PATH.
        self.env = dict(
            os.environ,
            FLWR_HOME=str(self.home),
            PATH=os.pathsep.join([str(bindir), os.environ.get("PATH", "")]),
        )
        self.link: subprocess.Popen | None = None
        self.nodes: dict[int, subprocess.Popen] = {}
        self.node_configs: dict[int, str] = {}
        self.port = 0
        self.logs: list[IO[str]] = []
        self.app = self.home / "app"
        self.home.mkdir(parents=True, exist_ok=True)
        copy_app(self.app)

    def _start(self, argv: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.home / log_name, "a")
        self.logs.append(log)
        proc = subprocess.Popen(argv, cwd=self.workdir, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        print(f"started {Path(argv[0]).name} (pid {proc.pid}, log {self.home / log_name})",
              flush=True)
        return proc

    def start(self, shards: dict[int, Path], node_extra: dict[str, str] | None = None) -> None:
        """The SuperLink, then one SuperNode per shard (client id -> shard file)."""
        self.port = free_port()
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n'
            f'[superlink.{CONNECTION}]\naddress = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )
        self.link = self._start(
            [self.exe["flower-superlink"], "--insecure", "--host", "127.0.0.1",
             "--port", str(self.port), "--disable-runtime-dependency-installation"],
            "superlink.log",
        )
        wait_port(self.port, 60, self.link)
        for client, shard in sorted(shards.items()):
            pairs = [f"client-id={client}", f"data-path={toml_str(str(shard))}",
                     f"fedpref-bin={toml_str(self.fedpref_bin)}"]
            pairs += [f"{k}={toml_str(v)}" for k, v in (node_extra or {}).items()]
            self.node_configs[client] = " ".join(pairs)
            self.start_node(client)

    def start_node(self, client: int) -> None:
        self.nodes[client] = self._start(
            [self.exe["flower-supernode"], "--insecure", "--superlink", f"127.0.0.1:{self.port}",
             "--port", str(free_port()), "--node-config", self.node_configs[client]],
            f"supernode-{client}.log",
        )

    def kill_node(self, client: int) -> None:
        """SIGKILL the SuperNode of `client` and everything it started."""
        proc = self.nodes.pop(client)
        below = descendants(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_pids(below)
        proc.wait()
        print(f"killed the SuperNode of client {client} (pid {proc.pid})", flush=True)

    def run(self, run_config: dict[str, object], *, wait: bool = True):
        """`flwr run <app> <connection> --stream` with `run_config`; its exit status, or the
        process when `wait` is false."""
        pairs = []
        for key, value in run_config.items():
            pairs.append(f"{key}={toml_str(value) if isinstance(value, str) else value}")
        argv = [self.exe["flwr"], "run", str(self.app), CONNECTION, "--stream",
                "--run-config", " ".join(pairs)]
        print("$ " + " ".join(argv), flush=True)
        proc = subprocess.Popen(argv, cwd=self.workdir, env=self.env, start_new_session=True)
        if not wait:
            return proc
        return proc.wait()

    def stop(self) -> None:
        """Stop the SuperLink (and the ServerApp it runs), then every SuperNode, each by its
        process group."""
        if self.link is not None:
            stop_group(self.link)
            self.link = None
        for client in list(self.nodes):
            stop_group(self.nodes.pop(client))
        for log in self.logs:
            log.close()
        self.logs.clear()


def copy_app(target: Path) -> None:
    """Copies the app, without run outputs or tests, to `target` for `flwr run`, which packs
    every source file of the folder it is given."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(APP_DIR, target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "run_local.py"))

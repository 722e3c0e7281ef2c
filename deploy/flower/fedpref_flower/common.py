"""Running the fedpref CLI, logging, and the names of message fields both sides share."""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord

# Record and field names in the messages (server <-> node).
GLOBAL_RECORD = "global"  # ArrayRecord: the global file's tensors (params, offsets)
UPDATE_RECORD = "update"  # ArrayRecord: the client's new params
CONFIG_RECORD = "fedpref"  # ConfigRecord: round, client, run, config text, ...
RESULT_RECORD = "result"  # ConfigRecord in a reply: client-id, info / units, or error

STDERR_TAIL = 4000  # characters of fedpref's stderr kept in an error message


def get_logger(name: str) -> logging.Logger:
    """A logger that writes one line per record to stderr (which Flower streams)."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
        logger.addHandler(handler)
        level = os.environ.get("FEDPREF_FLOWER_LOG", "INFO").upper()
        logger.setLevel(getattr(logging, level, logging.INFO))
        logger.propagate = False
    return logger


class FedprefError(RuntimeError):
    """A fedpref command that failed: its command line, exit status and stderr."""

    def __init__(self, argv: list[str], returncode: int | None, stderr: str, note: str = ""):
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip()
        if len(tail) > STDERR_TAIL:
            tail = "..." + tail[-STDERR_TAIL:]
        what = note or f"exit status {returncode}"
        # name it `fedpref client train` etc.: skip the --plugin-dir options before the command
        i = 0
        while i + 1 < len(argv) and argv[i + 1] == "--plugin-dir":
            i += 2
        words = [a for a in argv[i + 1 : i + 3] if not a.startswith("-")]
        name = " ".join([Path(argv[0]).name, *words])
        super().__init__(f"{name} failed ({what}): {tail or '(no stderr)'}")

    def command(self) -> str:
        return shlex.join(self.argv)


def resolve_bin(name: str, base: Path | None = None) -> str:
    """`name` as an executable path: a path with a slash is resolved against `base`
    (default: the working directory); a bare name is looked up on PATH."""
    if os.sep in name or (os.altsep and os.altsep in name):
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        return str(path)
    found = shutil.which(name)
    return found or name


def run_fedpref(
    argv: list[str],
    logger: logging.Logger,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run one fedpref command and return the JSON object it prints on stdout.

    Raises FedprefError (with stderr) when it cannot start, fails, times out or prints
    something that is not JSON."""
    logger.debug("$ %s", shlex.join(argv))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as err:
        raise FedprefError(argv, None, str(err), "executable not found") from err
    except subprocess.TimeoutExpired as err:
        stderr = err.stderr.decode() if isinstance(err.stderr, bytes) else (err.stderr or "")
        raise FedprefError(argv, None, stderr, f"timed out after {timeout:.0f} s") from err
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise FedprefError(argv, proc.returncode, proc.stderr)
    if proc.stderr.strip():
        for line in proc.stderr.strip().splitlines()[-20:]:
            logger.debug("  fedpref: %s", line)
    logger.debug("  (%.1f s)", elapsed)
    return parse_json_output(argv, proc.stdout, proc.stderr)


def parse_json_output(argv: list[str], stdout: str, stderr: str) -> dict[str, Any]:
    """The JSON object fedpref printed: the whole stdout, else its last line that parses."""
    text = stdout.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
        for line in reversed(text.splitlines()):
            try:
                value = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    if not isinstance(value, dict):
        raise FedprefError(
            argv, 0, stderr, f"stdout is not a JSON object: {text[:300]!r}"
        )
    return value


def wire_array(value: np.ndarray) -> np.ndarray:
    """`value` as it crosses the network: bytes (uint8: encoded updates and broadcasts) as
    they are, anything else as little-endian f32."""
    arr = np.asarray(value)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(arr, dtype="<f4")


def arrays_to_record(tensors: dict[str, np.ndarray]) -> ArrayRecord:
    """An ArrayRecord holding each tensor as a flat numpy Array ([`wire_array`])."""
    record = ArrayRecord()
    for name, value in tensors.items():
        record[name] = Array(wire_array(value))
    return record


def record_to_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    """The tensors of an ArrayRecord as numpy arrays ([`wire_array`])."""
    return {name: wire_array(arr.numpy()) for name, arr in record.items()}


def record_bytes(record: ArrayRecord) -> int:
    """Bytes of array data an ArrayRecord carries: the payload, which for encoded updates and
    broadcasts is the encodings' bytes. (Flower serializes each Array in numpy's .npy format,
    adding a header of about 128 bytes per array, and the message framing on top.)"""
    return sum(arr.numpy().nbytes for arr in record.values())


def tail(text: str, limit: int = STDERR_TAIL) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]

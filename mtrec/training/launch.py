"""`mtrec launch -n N -- COMMAND ...`: N local processes of one training run, on loopback.

Each child is `python -m mtrec.cli COMMAND ...` with `KERAS_BACKEND=jax` and Keras's distribution
variables set (`KERAS_DISTRIBUTION_JOB_ADDRESSES=127.0.0.1:PORT`,
`KERAS_DISTRIBUTION_NUM_PROCESSES=N`, `KERAS_DISTRIBUTION_PROCESS_ID=i`), exactly what Slurm or
Kubernetes would set on several machines. Every line a child prints is prefixed with its rank
(`[0] ...`). When a child fails, the others are stopped, and the launch exits with the status of
the first one that failed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

from mtrec.errors import ConfigError


def free_port() -> int:
    """A TCP port that is free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _relay(stream: IO[str], rank: int, out: IO[str]) -> None:
    for line in stream:
        out.write(f"[{rank}] {line}" if line.endswith("\n") else f"[{rank}] {line}\n")
        out.flush()


def launch_processes(n: int, argv: Sequence[str], port: int | None = None, env: dict[str, str] | None = None,
                     timeout_s: float | None = None, cwd: str | None = None,
                     out: IO[str] | None = None) -> tuple[list[int | None], int]:
    """Starts `n` processes of `python ARGV...` on loopback with Keras's variables set, and waits.

    Args:
        n: the number of processes.
        argv: the arguments after `python` (e.g. `["-m", "mtrec.cli", "train", "-c", "a.yaml"]`).
        port: the coordinator's port on 127.0.0.1 (a free one by default).
        env: further environment variables for every child.
        timeout_s: stop every child after this many seconds (None: wait for ever).
        cwd: the children's working directory.
        out: where the prefixed lines go (this process's stdout by default).

    Returns:
        `(exit codes by rank, status)`: `status` is the exit code of the first child that failed
        (1 on a timeout), or 0 when all succeeded.
    """
    if n < 1:
        raise ConfigError(f"The number of processes must be >= 1. Received: {n}")
    out = out or sys.stdout
    base = {**os.environ, **(env or {}), "KERAS_BACKEND": "jax",
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port or free_port()}",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(n), "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**base, "KERAS_DISTRIBUTION_PROCESS_ID": str(i)})
             for i in range(n)]
    relays = [threading.Thread(target=_relay, args=(p.stdout, i, out), daemon=True) for i, p in enumerate(procs)]
    for relay in relays:
        relay.start()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    status = 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed or (deadline is not None and time.monotonic() > deadline):
                status = failed[0] if failed else 1
                break
            time.sleep(0.2)
        else:
            status = next((p.returncode for p in procs if p.returncode != 0), 0)
    finally:
        for p in procs:  # stop the others: they would wait for the failed one's collectives
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for relay in relays:
            relay.join(timeout=5)
    return [p.returncode for p in procs], status


def launch(n: int, command: Sequence[str], port: int | None = None) -> int:
    """`mtrec launch`: runs `mtrec COMMAND...` in `n` local processes; returns the exit status."""
    command = list(command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ConfigError("mtrec launch needs the command to run after '--', e.g. "
                          "mtrec launch -n 2 -- train -c CONFIG")
    if command[0] != "train":
        raise ConfigError(f"mtrec launch runs 'train' across processes. Received: {command[0]!r}")
    return launch_processes(n, ["-m", "mtrec.cli", *command], port=port)[1]

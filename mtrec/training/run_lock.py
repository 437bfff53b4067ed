"""One writer per run directory: an advisory lock, and `run.json` with pid, host and a heartbeat.

`mtrec train` holds an exclusive `fcntl` lock on `RUN_DIR/run.lock` for as long
as it lives; the operating system drops it when the process ends, even on
`kill -9`. A second writer is refused with the holder's pid and host. While
the run lives, a thread refreshes `run.json`'s `heartbeat`; a `run.json` that
says "running" while nobody holds the lock belongs to a dead process, and
`run_status` reports it as "interrupted".
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the directory is not guarded
    fcntl = None

from mtrec.errors import RunDirectoryError
from mtrec.utils.atomic import write_json

LOCK_NAME = "run.lock"
#: Seconds between heartbeats in run.json.
HEARTBEAT_SECONDS = 30.0


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


class RunLock:
    """The exclusive lock of a run directory; use as a context manager.

    Args:
        run_dir: the run directory (created if missing).

    Raises:
        RunDirectoryError: another live process holds the lock, or `run_dir`
            is a file or cannot be created (on entry).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise RunDirectoryError(f"Run directory {self.run_dir} is a file, not a folder. "
                                    "Choose another --run-dir.")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a parent is a file, or not writable
            raise RunDirectoryError(f"Cannot create the run directory {self.run_dir}: {err.strerror}.") from None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is None:
            self._fd = fd
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirectoryError(
                f"Run directory {self.run_dir} is in use by another mtrec process "
                f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"since {holder.get('since', '?')}). Wait for it to finish or choose another --run-dir."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}


def is_locked(run_dir: str | Path) -> bool:
    """Whether a live process holds the run directory's lock."""
    path = Path(run_dir) / LOCK_NAME
    if not path.exists() or fcntl is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """`run.json`, with "running" turned into "interrupted" when no live process holds the lock.

    Returns:
        The record (an empty dict when there is no `run.json`).
    """
    path = Path(run_dir) / "run.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if record.get("status") == "running" and not is_locked(run_dir):
        record["status"] = "interrupted"
    return record


class RunStatus:
    """Writes `run.json`: status, pid, host, heartbeat and running totals; a thread keeps the heartbeat fresh.

    Args:
        run_dir: the run directory.
        base: fields every write carries (versions, start time).
        interval: seconds between heartbeats.
    """

    def __init__(self, run_dir: str | Path, base: dict[str, Any],
                 interval: float = HEARTBEAT_SECONDS) -> None:
        self.path = Path(run_dir) / "run.json"
        self.record: dict[str, Any] = {"status": "running", "pid": os.getpid(),
                                       "host": socket.gethostname(), **base}
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, **fields: Any) -> None:
        """Sets fields and rewrites run.json (with a fresh heartbeat)."""
        with self._lock:
            self.record.update(fields)
            now = _now()
            self.record["updated"] = now
            self.record["heartbeat"] = now
            write_json(self.path, self.record)

    def start(self) -> None:
        """Writes the "running" record and starts the heartbeat thread."""
        self.update(status="running")
        self._thread = threading.Thread(target=self._beat, name="mtrec-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self._lock:
                    if self.record.get("status") != "running":
                        return
                self.update()
            except OSError:
                pass

    def finish(self, status: str, **fields: Any) -> None:
        """Stops the heartbeat and writes the final status."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.update(status=status, **fields)


def _age(stamp: Any) -> str:
    """`"4 min ago"` for an ISO time of this host's clock (run.json's heartbeat), or "" when unreadable."""
    try:
        seconds = (dt.datetime.now() - dt.datetime.fromisoformat(str(stamp))).total_seconds()
    except ValueError:
        return ""
    if seconds < 120:
        return f" ({seconds:.0f} s ago)"
    if seconds < 7200:
        return f" ({seconds / 60:.0f} min ago)"
    return f" ({seconds / 3600:.1f} h ago)"


def describe_run(run_dir: str | Path) -> str:
    """What `mtrec status RUN_DIR` prints: state, epochs, time, pid, host and heartbeat age, and what to do.

    The state is run.json's, with "running" shown as "interrupted" when no
    live process holds the directory's lock (`run_status`).

    Raises:
        RunDirectoryError: `run_dir` has no readable run.json (not a run directory).
    """
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file():
        where = "has no run.json" if run_dir.is_dir() else "does not exist"
        raise RunDirectoryError(f"{run_dir} is not a run directory: it {where}.")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunDirectoryError(f"{path} is unreadable: {' '.join(str(err).split())}") from None
    if not isinstance(record, dict):
        raise RunDirectoryError(f"{path} is not a run record (a JSON object).")
    status = record.get("status", "unknown")
    if status == "running" and not is_locked(run_dir):
        status = "interrupted"
    attempts = int(record.get("attempts") or 1)
    lines = [f"{run_dir}: {status}",
             f"  epochs {record.get('epochs', 0)}, {float(record.get('seconds') or 0):.1f} s"
             + (f" over {attempts} attempts" if attempts > 1 else "")]
    if record.get("pid") is not None:
        lines.append(f"  pid {record['pid']} on {record.get('host', '?')}, "
                     f"last heartbeat {record.get('heartbeat', '?')}{_age(record.get('heartbeat'))}")
    if status == "failed":
        lines.append(f"  error: {record.get('error', '?')}")
    elif status == "interrupted":
        from mtrec.training.checkpoints import list_checkpoints

        done = [epoch for epoch, _, _ in list_checkpoints(run_dir / "checkpoints")]
        resume = f"from epoch {done[0]} (its checkpoint)" if done else "from the start (no checkpoint)"
        lines.append(f"  rerun `mtrec train -c CONFIG --run-dir {run_dir}` to resume {resume}")
    elif status == "completed":
        lines.append(f"  model.keras and report.json in {run_dir}")
    return "\n".join(lines)

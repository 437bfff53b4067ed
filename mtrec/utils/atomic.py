"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and a failure leaves the old file (or
nothing) in place. Files get the permissions of an ordinary `open()` (0666
less the process's umask), not the 0600 of `tempfile.mkstemp`, so a shared
run directory stays readable by the team. Temporary files carry the writer's
process id (`.NAME.<pid>-<random><suffix>`); the next write of the same target
removes those of processes that are gone (a killed run's leftovers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK_LOCK = threading.Lock()
#: Temporary files without a process id (written before it was added) are stale after this many seconds.
LEGACY_TEMPORARY_AGE = 3600.0


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: str | os.PathLike) -> None:
    """Flushes a written file's contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Deletes temporary files left in `folder` by killed writers.

    Args:
        folder: the folder to clean.
        name: only the temporaries of this target name. Defaults to all.

    Returns:
        The files removed: those whose writer process is gone, and
        pid-less ones (an older mtrec's) more than an hour old.
    """
    folder = Path(folder)
    removed = []
    stem = re.escape(name) if name is not None else r".+?"
    pattern = re.compile(rf"^\.(?P<name>{stem})\.(?:(?P<pid>\d+)-)?[a-z0-9_]{{8}}(?:\..+)?$")
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if not match or not path.is_file():
            continue
        pid = match.group("pid")
        try:
            stale = (not _pid_alive(int(pid))) if pid else (
                time.time() - path.stat().st_mtime > LEGACY_TEMPORARY_AGE)
            if stale:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None,
                fsync: bool = False) -> Iterator[Path]:
    """Yields a temporary path in the target's folder; renames it onto `target` on success.

    Args:
        target: the final path.
        suffix: suffix of the temporary file (some writers, like Keras, need
            the real extension). Defaults to the target's suffix.
        fsync: flush the file and the folder to disk around the rename
            (checkpoints). Defaults to `False`.

    Yields:
        The temporary path to write to. On an exception it is removed and
        `target` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent, target.name)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}-", suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
            if fsync:
                fsync_path(tmp_path)
        os.replace(tmp_path, target)
        if fsync:
            _fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | os.PathLike, text: str, fsync: bool = False) -> None:
    """Writes `text` to `target` atomically."""
    with atomic_path(target, fsync=fsync) as tmp:
        tmp.write_text(text)


def write_json(target: str | os.PathLike, obj: Any, fsync: bool = False) -> None:
    """Writes `obj` as indented JSON to `target` atomically."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", fsync=fsync)


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays show up in metric dicts.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

"""Staleness checks: a step is skipped when its outputs exist and its fingerprint matches.

A fingerprint is a SHA-256 over everything a step's output depends on: the
config sections it reads, the stats of its input files, and the source of the
code that computes it. A finished step writes a stamp (a small JSON file with
its fingerprint) next to its outputs, atomically and last, so an interrupted
step never looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mtrec.utils.atomic import write_json


def fingerprint(*parts: Any) -> str:
    """SHA-256 (hex) of the parts' JSON (keys sorted; paths and other objects as strings)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_stats(paths: Iterable[str | os.PathLike]) -> list[list[Any]]:
    """`[name, size, mtime_ns]` of each existing file: cheap, and changes whenever a file does."""
    stats = []
    for path in sorted(Path(p) for p in paths):
        if path.is_file():
            st = path.stat()
            stats.append([path.name, st.st_size, st.st_mtime_ns])
    return stats


def folder_stats(folder: str | os.PathLike) -> list[list[Any]]:
    """`file_stats` of every file directly in `folder` (empty when it does not exist)."""
    folder = Path(folder)
    return file_stats(folder.iterdir()) if folder.is_dir() else []


def source_hash(*paths: str | os.PathLike) -> str:
    """SHA-256 of the given source files, or of every `.py` file under given folders."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                digest.update(file.name.encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()


def read_stamp(path: str | os.PathLike) -> dict[str, Any] | None:
    """The stamp at `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def is_current(stamp_path: str | os.PathLike, fp: str, outputs: Iterable[str | os.PathLike] = ()) -> bool:
    """Whether a step finished with fingerprint `fp` and all its `outputs` still exist."""
    stamp = read_stamp(stamp_path)
    return (stamp is not None and stamp.get("fingerprint") == fp and stamp.get("status") == "completed"
            and all(Path(p).exists() for p in outputs))


def write_stamp(path: str | os.PathLike, fp: str, status: str = "completed", **extra: Any) -> None:
    """Writes a stamp atomically: `{"fingerprint": fp, "status": status, **extra}`."""
    write_json(path, {"fingerprint": fp, "status": status, **extra})

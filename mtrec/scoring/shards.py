"""Scoring a folder of shards: one output shard per input shard, restartable.

A billion-row scoring job is a folder of Parquet (or CSV) shards. Each input
shard is scored batch by batch (`score.score_streams`: a few record batches
in memory, the shards one after another as one pipeline, so that the next
shard's first batches are encoded while this one's last is predicted) into
the output shard of the same base name (`part-00003.parquet`,
`day=2/x.csv.gz` -> `day=2/x.parquet`), written atomically. After each
shard, a small marker `_mtrec_scoring/<shard>.json` records the input's size
and modification time and the run's fingerprint; a rerun skips every shard
whose output and marker are there and still match, and scores the rest (a
rewritten input, or a job scored with another run, is scored again). A kill
leaves no file under a final name: the shard being written is a hidden
temporary file, removed by the rerun.

The output folder holds only the scores and the `_`-prefixed marker folder,
which Parquet readers (pyarrow, Spark) skip. With `workers` > 1, whole shards
are scored in that many processes (`mtrec.scoring.workers`), each through the
same `score_shard`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mtrec.data.io import CSV_SUFFIXES, PARQUET_SUFFIXES
from mtrec.errors import DataError
from mtrec.scoring.score import ScoreSummary, StreamCounts, score_stream, score_streams, warn_counts
from mtrec.training.trained_run import TrainedRun, load_run
from mtrec.utils.atomic import remove_stale_temporaries, write_json
from mtrec.utils.validation import short_list

#: The folder of per-shard markers inside the output folder (`_`: skipped by Parquet readers).
MARKERS = "_mtrec_scoring"


@dataclasses.dataclass
class FolderScoreSummary(ScoreSummary):
    """What `score_folder` did: `ScoreSummary`'s fields for this call's rows, and the shards.

    Args:
        output: the output folder.
        rows: rows scored by this call.
        seconds: wall time of this call.
        oov_counts: unseen categories per feature, over the shards scored.
        shards: input shards found.
        scored: shards scored by this call.
        skipped: shards already scored by an earlier call (and unchanged since).
    """

    shards: int
    scored: int
    skipped: int


def input_shards(folder: Path) -> list[tuple[Path, Path]]:
    """The shards of `folder` with their output names: `(input, relative output path)`.

    Every Parquet and CSV file under `folder`, recursively (hive partition
    folders keep their names), skipping names that start with `.` or `_`.

    Raises:
        DataError: the folder holds no shard, or two shards would write the
            same output (`a.csv` and `a.parquet`).
    """
    shards, owners = [], {}
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(folder)
        if any(part.startswith((".", "_")) for part in relative.parts) or not file.is_file():
            continue
        name = file.name.lower()
        suffix = next((s for s in PARQUET_SUFFIXES + CSV_SUFFIXES if name.endswith(s)), None)
        if suffix is None:
            continue
        out = relative.with_name(file.name[:-len(suffix)] + ".parquet")
        if out in owners:
            raise DataError(f"Shards {owners[out]} and {file.resolve()} of {folder.resolve()} would both be "
                            f"scored into {out}: rename one.")
        owners[out] = file.resolve()
        shards.append((file, out))
    if not shards:
        names = sorted(p.name for p in folder.iterdir())
        raise DataError(f"Folder {folder.resolve()} holds no Parquet or CSV shards. "
                        f"It holds: {short_list(names) if names else 'nothing'}.")
    return shards


def _run_identity(run: TrainedRun) -> dict[str, Any]:
    """What ties finished shards to the run that scored them: run.json's fingerprint, else the model file."""
    try:
        fingerprint = json.loads((run.run_dir / "run.json").read_text()).get("fingerprint") or {}
    except (OSError, ValueError, AttributeError):
        fingerprint = {}
    if fingerprint:
        return {"run_dir": str(run.run_dir.resolve()), "fingerprint": fingerprint}
    model = run.run_dir / "model.keras"
    stat = model.stat() if model.exists() else None
    return {"run_dir": str(run.run_dir.resolve()),
            "model": [stat.st_size, stat.st_mtime_ns] if stat else None}


def _input_stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _is_done(marker: Path, output: Path, stamp: dict[str, Any], identity: dict[str, Any]) -> bool:
    if not (marker.is_file() and output.is_file()):
        return False
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return (record.get("input") == stamp and record.get("run") == identity
            and record.get("output_bytes") == output.stat().st_size)


def score_folder(run_dir: str | Path | TrainedRun, input_folder: str | Path, output_folder: str | Path,
                 batch_size: int | None = None, progress: bool = True, workers: int = 1) -> FolderScoreSummary:
    """Scores every shard of a folder into one output shard each; a rerun skips finished shards.

    Args:
        run_dir: a run directory (or a loaded TrainedRun).
        input_folder: a folder of Parquet/CSV shards (see `input_shards`).
        output_folder: the folder of scores (created): one Parquet shard per
            input shard, same relative path and base name, the columns of
            `score_file`'s output.
        batch_size: rows per record batch and forward pass; defaults to the
            config's `scoring.batch_size`. Memory is bounded by it.
        progress: show a progress bar (rows of the shards to score).
        workers: score the shards in this many processes, whole shards each
            (`mtrec.scoring.workers`); 1 (the default) scores them here.

    Returns:
        A FolderScoreSummary.

    Raises:
        DataError: the output folder is the input folder, lies inside it or is
            a file; a shard is unreadable or truncated (named; the shards
            finished before it are kept, and a rerun resumes there); a
            feature's +/-inf share in a shard is above
            `data.max_nonfinite_fraction`; `batch_size` is not positive.
        SchemaError: a shard lacks a feature or id column (named).

    Warns (UserWarning): as `score_file`, once for the whole job.
    """
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    if not input_folder.is_dir():
        raise DataError(f"{input_folder} is not a folder of shards.")
    if output_folder.exists() and not output_folder.is_dir():
        raise DataError(f"Output path {output_folder} is a file; scoring a folder of shards writes a folder. "
                        "Give a folder name.")
    if output_folder.resolve().is_relative_to(input_folder.resolve()):
        where = "is" if output_folder.resolve() == input_folder.resolve() else "lies inside"
        raise DataError(f"Output folder {output_folder} {where} the input folder {input_folder}; its scores "
                        "would be read as shards. Write them to another folder.")
    if batch_size is not None and batch_size <= 0:
        raise DataError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DataError(f"`workers` must be a positive integer. Received: workers={workers!r}")
    shards = input_shards(input_folder)
    run = run_dir if isinstance(run_dir, TrainedRun) else load_run(run_dir)
    batch_size = batch_size or run.config.scoring.batch_size
    identity = _run_identity(run)
    started = time.perf_counter()
    todo = []
    for source, relative in shards:
        output, marker = output_folder / relative, output_folder / MARKERS / f"{relative}.json"
        remove_stale_temporaries(output.parent)  # a killed job's half-written shard
        stamp = _input_stamp(source)
        if not _is_done(marker, output, stamp, identity):
            todo.append((source, output, marker, stamp))
    total = _known_rows([source for source, *_ in todo])
    counts = StreamCounts()
    items = [(source, output, marker, stamp, batch_size, identity) for source, output, marker, stamp in todo]
    with tqdm(total=total, unit="rows", desc="scoring", disable=not progress) as bar:
        if workers > 1 and len(items) > 1:
            from mtrec.scoring.workers import score_shards

            for shard_counts in score_shards(run.run_dir, items, workers):  # progress by finished shard
                counts.add(shard_counts)
                bar.update(shard_counts.rows)
        else:
            for shard_counts in _score_here(run, todo, batch_size, identity, bar.update):
                counts.add(shard_counts)
    warn_counts(run, counts, input_folder)
    return FolderScoreSummary(output_folder, counts.rows, time.perf_counter() - started, counts.oov_counts,
                              shards=len(shards), scored=len(todo), skipped=len(shards) - len(todo))


def score_shard(run: TrainedRun, source: Path, output: Path, marker: Path, stamp: dict[str, Any],
                batch_size: int, identity: dict[str, Any], on_rows: Any = None) -> StreamCounts:
    """Scores one input shard into its output shard (`score_stream`), then writes its marker.

    Args:
        run: the trained run.
        source: the input shard.
        output: its output shard.
        marker: its marker file.
        stamp: the input's size and modification time before scoring (`_input_stamp`).
        batch_size: rows per record batch and forward pass.
        identity: the run's identity (`_run_identity`), recorded in the marker.
        on_rows: called with the rows of each batch scored (progress).

    Returns:
        The shard's `StreamCounts`.

    Raises:
        DataError: the shard changed while it was scored (its output is removed), or as `score_stream`.
    """
    # A stale marker must not vouch for the new output while it is written.
    marker.unlink(missing_ok=True)
    counts = score_stream(run, source, output, batch_size, on_rows)
    _finish_shard(source, output, marker, stamp, identity, counts)
    return counts


def _score_here(run: TrainedRun, todo: list[tuple[Path, Path, Path, dict[str, Any]]], batch_size: int,
                identity: dict[str, Any], on_rows: Any = None) -> Iterator[StreamCounts]:
    """Scores the shards in this process as one pipeline (`score_streams`), marking each when it is in place.

    Args:
        run: the trained run.
        todo: `(input, output, marker, stamp)` per shard to score.
        batch_size: rows per record batch and forward pass.
        identity: the run's identity, recorded in the markers.
        on_rows: called with the rows of each batch scored (progress).

    Yields:
        Each shard's `StreamCounts`, in order, after its marker is written.
    """
    for _, _, marker, _ in todo:
        marker.unlink(missing_ok=True)  # a stale marker must not vouch for an output being rewritten
    done = 0
    for counts in score_streams(run, [(source, output) for source, output, _, _ in todo], batch_size, on_rows):
        source, output, marker, stamp = todo[done]
        _finish_shard(source, output, marker, stamp, identity, counts)
        done += 1
        yield counts


def _finish_shard(source: Path, output: Path, marker: Path, stamp: dict[str, Any], identity: dict[str, Any],
                  counts: StreamCounts) -> None:
    """Writes a scored shard's marker, unless its input changed while it was scored.

    Raises:
        DataError: the input changed (its output is removed).
    """
    if _input_stamp(source) != stamp:
        output.unlink()
        raise DataError(f"Shard {source.resolve()} changed while it was scored; rerun.")
    write_json(marker, {"input": stamp, "run": identity, "rows": counts.rows,
                        "output_bytes": output.stat().st_size, "source": str(source.resolve())})


def _known_rows(paths: list[Path]) -> int | None:
    """Rows of the shards from their Parquet footers; None when one is CSV or unreadable (counted later)."""
    import pyarrow.parquet as pq

    total = 0
    for path in paths:
        if not path.name.lower().endswith(PARQUET_SUFFIXES):
            return None
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except Exception:  # a damaged shard is named when it is read
            return None
    return total


__all__ = ["FolderScoreSummary", "MARKERS", "input_shards", "score_folder"]

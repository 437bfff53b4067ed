"""Batch scoring: a table in, one column per task (plus carried id columns) out."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from mtrec.data.io import (ParquetBatchWriter, count_rows, iter_file_batches, iter_parquet_batches,
                          mark_missing, read_schema)
from mtrec.errors import DataError
from mtrec.training.predict import predict_arrays
from mtrec.training.trained_run import TrainedRun, load_run
from mtrec.utils.validation import check_nonfinite, require_columns, scan_numbers


#: Threads that check and encode the next batches of a streamed input while one is scored. Encoding
#: holds the GIL for about a fifth of its time, so two overlap well; with one, encoding was the
#: slowest stage and kept the forward pass waiting.
ENCODE_THREADS = 2


@dataclasses.dataclass
class ScoreSummary:
    """What `score_file` did."""

    output: Path
    rows: int
    seconds: float
    oov_counts: dict[str, int]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def _check_id_columns(id_columns: list[str], columns: list[str], source: str) -> None:
    require_columns(columns, id_columns, source, note=" (data.id_columns)", what="Id column")


def check_output_path(input_path: Path, output_path: Path) -> None:
    """Refuses an output that is a folder, is the input itself, or lies inside an input folder.

    Raises:
        DataError: naming both paths.
    """
    if output_path.is_dir():
        raise DataError(
            f"Output path {output_path} is a directory; give a file name such as "
            f"{output_path / 'scores.parquet'}.")
    same = output_path.exists() and input_path.exists() and output_path.samefile(input_path)
    inside = input_path.is_dir() and output_path.resolve().is_relative_to(input_path.resolve())
    if same or inside:
        raise DataError(
            f"Output path {output_path} {'is the input file' if same else 'lies inside the input folder'} "
            f"{input_path}; scoring would replace the rows it reads. Write the scores to another path.")


def _empty_output(run: TrainedRun, schema: pa.Schema) -> pa.Table:
    """The scores table of zero rows: the same columns and types as for any other input."""
    fields = [schema.field(c) for c in run.config.data.id_columns]
    for task in run.config.tasks:
        if task.auxiliary:
            continue
        width = int(getattr(task, "num_classes", 1) or 1)
        for name, values in task.output_columns(np.zeros((0, width), "float32")).items():
            kind = pa.list_(pa.float32()) if isinstance(values, list) else pa.from_numpy_dtype(values.dtype)
            fields.append(pa.field(name, kind))
        if getattr(task, "after", None) is not None:
            fields.append(pa.field(f"{task.name}_conditional", pa.float32()))
    return pa.schema(fields).empty_table()


def _frames(path: Path, batch_size: int, columns: list[str], na_values: list[str]):
    """The rows of `path` in batches: one record batch (or CSV chunk) in memory at a time."""
    if path.is_dir():
        for frame in iter_parquet_batches(path, batch_size, columns=columns):
            yield mark_missing(frame, na_values)
    else:
        yield from iter_file_batches(path, batch_size, columns=columns, na_values=na_values)


def score_frame(run: TrainedRun, frame: pd.DataFrame, batch_size: int | None = None,
                features: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Scores a DataFrame in memory: id columns, then one column per task.

    Args:
        run: the trained run.
        frame: rows with the run's feature and id columns.
        batch_size: rows per forward pass (default: the run's scoring batch size).
        features: `run.encoder.transform(frame)`, when the caller already has it.
    """
    batch_size = batch_size or run.config.scoring.batch_size
    if features is None:
        features = run.encoder.transform(frame)
    predictions = predict_arrays(run.model, features, batch_size)
    return _output_frame(run, frame, predictions)


def _task_columns(run: TrainedRun, predictions: dict[str, np.ndarray]) -> dict[str, Any]:
    """The scores' columns after the id columns: one or two per task, plus ESMM conditionals."""
    out: dict[str, Any] = {}
    for task in run.config.tasks:
        if task.auxiliary:
            continue
        out.update(task.output_columns(predictions[task.name]))
        parent = getattr(task, "after", None)
        if parent is not None:
            # joint = p(parent) * p(task | parent), so the conditional is exact division.
            joint, prior = predictions[task.name].ravel(), predictions[parent].ravel()
            out[f"{task.name}_conditional"] = np.where(
                prior > 0, joint / np.maximum(prior, 1e-12), 0.0).astype("float32")
    return out


def _output_frame(run: TrainedRun, frame: pd.DataFrame, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    out = {c: frame[c].to_numpy() for c in run.config.data.id_columns}
    out.update(_task_columns(run, predictions))
    return pd.DataFrame(out)


def _output_table(run: TrainedRun, frame: pd.DataFrame, predictions: dict[str, np.ndarray]) -> pa.Table:
    """`_output_frame`'s rows as an Arrow table, built from the arrays without a DataFrame.

    The streamed writers take Arrow directly: converting a DataFrame costs
    about 30 times as much as wrapping the score arrays, which are zero-copy.
    """
    arrays = {c: pa.array(frame[c].to_numpy(), from_pandas=True) for c in run.config.data.id_columns}
    arrays.update((name, pa.array(values)) for name, values in _task_columns(run, predictions).items())
    return pa.table(arrays)


def score_file(
    run_dir: str | Path | TrainedRun,
    input_path: str | Path,
    output_path: str | Path,
    batch_size: int | None = None,
    progress: bool = True,
) -> ScoreSummary:
    """Scores a Parquet (or CSV) file with a trained run and writes Parquet atomically.

    The input is read in record batches (CSV in chunks) of `batch_size`
    rows, so memory does not grow with the file. For a folder of shards
    scored into one output shard each, and restartable, see
    `mtrec.scoring.score_folder`.

    The input's columns are checked against the training features (and the
    id columns) before any row is scored. Unseen categories go to the
    out-of-vocabulary bucket and are counted in a warning.

    Args:
        run_dir: a run directory (or a loaded TrainedRun).
        input_path: rows to score.
        output_path: the Parquet file to write: the id columns from the
            config's `data.id_columns`, then one column per task
            (probability, value, or class and `<task>_proba`), rows in input
            order.
        batch_size: rows per step; defaults to the config's `scoring.batch_size`.
        progress: show a progress bar.

    Returns:
        A ScoreSummary (rows, seconds, OOV counts).

    Raises:
        DataError: the output path is a folder, the input itself or inside
            the input folder (checked before the run is loaded); the input
            is unreadable; `batch_size` is not positive.
        SchemaError: the input lacks a feature or id column.

    Warns (UserWarning): a feature column that is entirely missing, +/-inf
    values (scored as missing; more than `data.max_nonfinite_fraction` of a
    column's rows is a DataError, as are numbers beyond float32's range),
    unseen categories.

    A zero-row input gives a zero-row file with the usual columns.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    check_output_path(input_path, output_path)
    if batch_size is not None and batch_size <= 0:
        raise DataError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size}")
    run = run_dir if isinstance(run_dir, TrainedRun) else load_run(run_dir)
    batch_size = batch_size or run.config.scoring.batch_size
    try:
        total = count_rows(input_path)
    except Exception:  # CSV: no cheap row count
        total = None
    started = time.perf_counter()
    with tqdm(total=total, unit="rows", desc="scoring", disable=not progress) as bar:
        counts = score_stream(run, input_path, output_path, batch_size, bar.update)
    warn_counts(run, counts, input_path)
    return ScoreSummary(output_path, counts.rows, time.perf_counter() - started, counts.oov_counts)


@dataclasses.dataclass
class StreamCounts:
    """What `score_stream` counted: rows, unseen categories and present values per feature."""

    rows: int = 0
    oov: Counter = dataclasses.field(default_factory=Counter)
    present: Counter = dataclasses.field(default_factory=Counter)

    @property
    def oov_counts(self) -> dict[str, int]:
        """Unseen categories per feature, features without any left out."""
        return {k: int(v) for k, v in self.oov.items() if v}

    def add(self, other: StreamCounts) -> None:
        """Adds `other`'s counts to these."""
        self.rows += other.rows
        self.oov.update(other.oov)
        self.present.update(other.present)


def score_stream(run: TrainedRun, input_path: Path, output_path: Path, batch_size: int,
                 on_rows: Any = None) -> StreamCounts:
    """Scores one input (file or Parquet folder) batch by batch into one Parquet file, atomically.

    `score_streams` with one input.

    Args:
        run: the trained run.
        input_path: rows to score.
        output_path: the Parquet file to write (appears only when complete).
        batch_size: rows per batch, and per forward pass.
        on_rows: called with the number of rows of each batch scored (progress).

    Returns:
        The `StreamCounts` of the input.

    Raises:
        DataError, SchemaError: as `score_file`.
    """
    (counts,) = score_streams(run, [(input_path, output_path)], batch_size, on_rows)
    return counts


def score_streams(run: TrainedRun, jobs: list[tuple[Path, Path]], batch_size: int,
                  on_rows: Any = None) -> Iterator[StreamCounts]:
    """Scores inputs one after another, each into one Parquet file, atomically, as one pipeline.

    Record batches are read in a background thread and checked and encoded
    in `ENCODE_THREADS` more, up to `2 * ENCODE_THREADS` batches ahead,
    while the current one is predicted and written, across inputs too: the next
    input's first batches are ready when this one's last is written, so a
    folder of many shards keeps both stages busy. Each input's columns are
    checked before any of its rows is read; each batch's magnitudes are
    checked, and the +/-inf share of each feature over the whole input is
    checked at its end (before its file is renamed into place).

    Args:
        run: the trained run.
        jobs: `(input, output)` pairs: rows to score (a file or a Parquet
            folder), and the Parquet file to write (appears only when complete).
        batch_size: rows per batch, and per forward pass.
        on_rows: called with the number of rows of each batch scored (progress).

    Yields:
        Each input's `StreamCounts`, in order, once its output is in place.
        An input's error is raised after the earlier inputs' counts.

    Raises:
        DataError, SchemaError: as `score_file`.
    """
    id_columns = run.config.data.id_columns
    columns = list(dict.fromkeys(id_columns + run.encoder.input_columns))
    inputs = list(dict.fromkeys(run.encoder.input_columns))

    def items() -> Iterator[tuple[int, Any]]:
        """`(job, schema)` when an input starts, `(job, frame)` per batch, `(job, None)` when it ends."""
        for index, (input_path, _) in enumerate(jobs):
            schema = read_schema(input_path)
            run.encoder.check_columns(schema, source=str(input_path))
            _check_id_columns(id_columns, list(schema.names), str(input_path))
            yield index, schema
            for frame in _frames(input_path, batch_size, columns, run.config.data.na_values):
                if len(frame):
                    yield index, frame
            yield index, None

    def encode(item: tuple[int, Any]) -> tuple[Any, ...]:
        """Check and encode a batch (in a pool thread: it leaves the encoder and the counts as they are)."""
        index, frame = item
        if not isinstance(frame, pd.DataFrame):
            return item
        return (index, frame, scan_numbers(frame, inputs, jobs[index][0]), present_counts(frame, inputs),
                *run.encoder.transform_counted(frame))

    writer: ParquetBatchWriter | None = None
    counts, nonfinite, schema = StreamCounts(), Counter(), None
    try:
        for item in ordered_map(encode, items(), ENCODE_THREADS):
            input_path, output_path = jobs[item[0]]
            if isinstance(item[1], pa.Schema):  # an input starts
                counts, nonfinite, schema = StreamCounts(), Counter(), item[1]
                # Scores are floats that rarely repeat: dictionary-encoding them costs several times
                # the plain write and saves nothing. Ids and class labels repeat, and keep it.
                repeated = [f.name for f in _empty_output(run, schema).schema if not pa.types.is_floating(f.type)]
                writer = ParquetBatchWriter(output_path, use_dictionary=repeated).__enter__()
            elif item[1] is None:  # it ends
                assert writer is not None and schema is not None
                if counts.rows == 0:
                    writer.write(_empty_output(run, schema))
                check_nonfinite(dict(nonfinite), counts.rows, run.config.data.max_nonfinite_fraction,
                                input_path, what="feature")
                finished, writer = writer, None
                finished.__exit__(None, None, None)
                yield counts
            else:
                assert writer is not None
                _, frame, nonfinite_counts, present, features, oov = item
                nonfinite.update(nonfinite_counts)
                counts.present.update(dict(zip(inputs, present)))
                counts.oov.update(oov)
                predictions = predict_arrays(run.model, features, batch_size)
                writer.write(_output_table(run, frame, predictions))
                counts.rows += len(frame)
                if on_rows is not None:
                    on_rows(len(frame))
    except BaseException as error:
        if writer is not None:  # the input being written is dropped: nothing half-written remains
            writer.__exit__(type(error), error, error.__traceback__)
        raise


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], threads: int) -> Iterator[Any]:
    """Yields `fn(item)` for each item, in order, with the items taken and computed ahead in background threads.

    One thread takes the items (reading them, when `items` reads a file)
    and hands each to a pool of `threads`, keeping up to `2 * threads`
    items in flight, so the caller waits only for a result that is not
    ready: not for items further ahead to be read, as when the caller took
    them itself.

    Errors keep their order: an item's error is raised where its result
    would be, after every earlier item's result; an error while taking the
    next item is raised after the results of the items before it.

    Args:
        fn: called on each item, from a pool thread.
        items: the inputs, advanced by one background thread only.
        threads: the pool's threads.

    Yields:
        `fn(item)`, in the order of `items`.
    """
    futures: queue.Queue = queue.Queue(maxsize=2 * threads)
    stop = threading.Event()
    end = object()

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mtrec-encode") as pool:
        def take() -> None:
            try:
                for item in items:
                    if stop.is_set():
                        return
                    futures.put(pool.submit(fn, item))
            except BaseException as error:  # raised in the caller's thread, in its place
                futures.put(_Failed(error))
            else:
                futures.put(end)

        taker = threading.Thread(target=take, name="mtrec-read-ahead", daemon=True)
        taker.start()
        try:
            while (entry := futures.get()) is not end:
                if isinstance(entry, _Failed):
                    raise entry.error
                yield entry.result()
        finally:  # done, or the caller stopped early or failed: skip what is left
            stop.set()
            while taker.is_alive() or not futures.empty():
                try:
                    entry = futures.get(timeout=0.01)
                except queue.Empty:
                    continue
                if isinstance(entry, Future):
                    entry.cancel()


@dataclasses.dataclass
class _Failed:
    """An error raised while taking the next item, passed to the caller's thread."""

    error: BaseException


def present_counts(frame: pd.DataFrame, columns: list[str]) -> list[int]:
    """The non-missing values of each column: every row of a numpy integer or boolean column (they
    cannot hold a missing value, so they are not read), `Series.count` of the others."""
    dtypes = frame.dtypes
    return [len(frame) if isinstance(dtypes[c], np.dtype) and dtypes[c].kind in "iub" else int(frame[c].count())
            for c in columns]


def warn_counts(run: TrainedRun, counts: StreamCounts, source: Any) -> None:
    """Warns about feature columns entirely missing in `source` and about unseen categories."""
    rows = counts.rows
    empty = [c for c in run.encoder.input_columns if rows and not counts.present[c]]
    if empty:
        warnings.warn(
            f"Feature column(s) {empty} of {source} are entirely missing ({rows:,} rows): they were "
            "scored as missing values (the training mean, or the out-of-vocabulary id).",
            UserWarning, stacklevel=3)
    if counts.oov_counts:
        warnings.warn(
            f"Unseen categories were scored in the out-of-vocabulary bucket: {counts.oov_counts} "
            f"(values per feature, of {rows:,} rows).", UserWarning, stacklevel=3)

"""`mtrec prepare`: a table larger than memory to encoded, model-ready shards per split.

Passes over the input, one record batch in memory at a time:

0. `group` splits only: count the rows of each group (the split column alone).
1. Fit: each batch's rows get their split (`mtrec.data.splits.split_codes`),
   the training rows' partial fit state is merged into the running one
   (`FeatureEncoder.partial_fit`), labels are checked. The fitted encoder is
   written (`features.json`, vocabularies as Parquet).
2. Write: each unit of work (one input file, or `shard_batches` batches of it)
   is encoded into one shard per split, `<split>/part-<file>-<chunk>.parquet`,
   each written atomically, then the unit is marked done.

Last, `manifest.json` is written atomically: its presence means complete.
A killed run leaves no manifest; rerun with the same config, it reuses the
fitted encoder and the finished units and completes the rest.

Shard columns: `row` (int64, the row's position in the input), `numeric`
(fixed-size list of float32), one int32 column per categorical feature, a
fixed-size list of int32 per multi-valued feature, `label.<task>` (float32,
NaN for missing) and `id.<column>` (the raw id columns).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mtrec.data.io import ParquetBatchWriter, _check_file, _csv_header, _parquet_files, iter_file_batches
from mtrec.data.splits import (
    SPLIT_NAMES,
    GroupSplit,
    check_split_sizes,
    check_streamable,
    split_codes,
)
from mtrec.errors import ConfigError, DataError, SchemaError, UnreadableFileError
from mtrec.features import NUMERIC_KEY, FeatureEncoder
from mtrec.features.columns import expand_numeric
from mtrec.preparation.checks import ValueChecks
from mtrec.preparation.state import load_encoder, save_encoder
from mtrec.utils.validation import check_unique_columns
from mtrec.utils.atomic import write_json

log = logging.getLogger(__name__)

FORMAT = "mtrec.prepared"
VERSION = 1
MANIFEST = "manifest.json"
WORK = "_work"
DEFAULT_BATCH_SIZE = 131_072
DEFAULT_SHARD_BATCHES = 8
#: The engines of `prepare`: this process, or Ray Data tasks.
ENGINES = ("embedded", "ray")
LABEL_PREFIX = "label."
ID_PREFIX = "id."


@dataclasses.dataclass
class PrepareResult:
    """What `prepare` wrote.

    Args:
        out: the prepared folder.
        manifest: the manifest's content.
        rows: input rows.
        seconds: wall time of this call.
        resumed: whether a killed run's work was reused.
    """

    out: Path
    manifest: dict[str, Any]
    rows: int
    seconds: float
    resumed: bool

    @property
    def rows_per_second(self) -> float:
        """Input rows per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


# --------------------------------------------------------------------------- inputs


def input_files(path: Any) -> list[tuple[Path, str]]:
    """The input files of `data.path` (file, list, or folder of Parquet shards), with their kind.

    Raises:
        ConfigError: `data.path` is empty.
        DataError: a path is missing, empty or of unknown type.
    """
    if not path:
        raise ConfigError(
            "mtrec prepare needs data.path: a Parquet/CSV file, a list of them, or a folder of "
            "Parquet shards. (The synthetic generator's rows fit in memory: use mtrec train.)")
    files = []
    for p in [path] if isinstance(path, str) else list(path):
        p = Path(p)
        kind = _check_file(p)
        if kind == "parquet_dir":
            files.extend((f, "parquet") for f in _parquet_files(p))
        else:
            files.append((p, kind))
    return files


def _file_schema(path: Path, kind: str) -> dict[str, str]:
    if kind != "parquet":
        return {c: "csv" for c in _csv_header(path)}  # a repeated name is refused there
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"Cannot read {path.resolve()} (truncated or not {kind}?): {err}") from err
    check_unique_columns(schema.names, path.resolve())
    return {f.name: str(f.type) for f in schema}


def check_schemas(files: list[tuple[Path, str]], needed: list[str]) -> dict[str, str]:
    """The first file's schema; every other file must have the needed columns with the same types.

    Raises:
        SchemaError: naming the file and the column that differs.
        DataError: a file is unreadable (truncated), naming it.
    """
    first, first_kind = files[0]
    schema = _file_schema(first, first_kind)
    for column in needed:
        if column not in schema:
            raise SchemaError(f"Column '{column}' is missing from {first.resolve()}. "
                              f"Columns present: {list(schema)}")
    for path, kind in files[1:]:
        other = _file_schema(path, kind)
        for column in needed:
            if column not in other:
                raise SchemaError(f"Shard {path.resolve()} lacks column '{column}', which "
                                  f"{first.resolve()} has.")
            if other[column] != schema[column]:
                raise SchemaError(
                    f"Shard {path.resolve()} has column '{column}' as {other[column]}, but "
                    f"{first.resolve()} has it as {schema[column]}. Every shard needs the same schema.")
    return schema


def _batches(path: Path, batch_size: int, columns: list[str], na_values: list[str]) -> Iterator[pd.DataFrame]:
    """One input file in record batches, read as `mtrec train` reads it (`data.io.iter_file_batches`:
    `na_values` missing in CSV and Parquet alike, Parquet page checksums verified)."""
    yield from iter_file_batches(path, batch_size, columns=columns, na_values=na_values)


# --------------------------------------------------------------------------- config identity


def prepared_config(config: Any, batch_size: int, shard_batches: int) -> dict[str, Any]:
    """The part of an experiment config that decides a prepared folder's content."""
    full = config.get_config()
    return {
        "data": {"path": full["data"]["path"], "split": full["data"]["split"],
                 "id_columns": full["data"]["id_columns"], "na_values": full["data"]["na_values"]},
        "features": full["features"],
        "tasks": [{"name": t["name"], "kind": t["kind"], "label": t.get("label")} for t in full["tasks"]],
        "layout": {"batch_size": batch_size, "shard_batches": shard_batches},
    }


def config_hash(prepared: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `prepared_config`'s output."""
    text = json.dumps(prepared, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}.{i}"))
        return out
    return {prefix: value}


def differing_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two `prepared_config` outputs."""
    fa, fb = _flatten(a), _flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, "<absent>") != fb.get(k, "<absent>"))


def _refuse_other_config(out: Path, found: dict[str, Any], wanted: dict[str, Any], what: str) -> None:
    keys = differing_keys(found, wanted)
    if keys:
        shown = "; ".join(f"{k}: {_flatten(found).get(k, '<absent>')!r} there, "
                          f"{_flatten(wanted).get(k, '<absent>')!r} now" for k in keys[:8])
        raise ConfigError(
            f"{out} holds {what} from another config; the keys that differ: {shown}"
            f"{' ...' if len(keys) > 8 else ''}. Use another --out folder, or --overwrite.")


# --------------------------------------------------------------------------- encoding


def _fixed_list(values: np.ndarray, width: int) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values).reshape(-1)), width)


def encoded_table(arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                  ids: pd.DataFrame, rows: np.ndarray) -> pa.Table:
    """One encoded batch as an Arrow table (the shard columns, see the module docstring)."""
    columns: dict[str, pa.Array] = {"row": pa.array(rows, type=pa.int64())}
    for name, values in arrays.items():
        if values.ndim == 2:
            columns[name] = _fixed_list(values, values.shape[1])
        else:
            columns[name] = pa.array(values)
    for name, values in labels.items():
        values = values.astype(np.float32)
        # (n, 1) labels as a float column; (n, 2) (label, sample weight) as a fixed list of 2.
        columns[f"{LABEL_PREFIX}{name}"] = pa.array(values.reshape(-1)) if values.shape[1] == 1 \
            else _fixed_list(values, values.shape[1])
    for name in ids.columns:
        columns[f"{ID_PREFIX}{name}"] = pa.Array.from_pandas(ids[name])
    return pa.table(columns)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a complete prepared folder.

    Raises:
        DataError: the folder has no manifest (not prepared, or prepare did not finish).
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DataError(f"{folder} is not a complete prepared folder: it has no {MANIFEST}. Run "
                        f"mtrec prepare -c CONFIG --out {folder} (a rerun finishes an interrupted one).")
    return json.loads(path.read_text())


def read_prepared(out: str | Path) -> tuple[dict[str, Any], FeatureEncoder]:
    """The manifest and the fitted encoder of a complete prepared folder.

    Raises:
        DataError: the folder has no manifest (not prepared, or prepare did not finish).
    """
    return read_manifest(out), load_encoder(out)


# --------------------------------------------------------------------------- prepare


def prepare(config: Any, out: str | Path, batch_size: int = DEFAULT_BATCH_SIZE,
            shard_batches: int = DEFAULT_SHARD_BATCHES, overwrite: bool = False,
            engine: str = "embedded", ray_address: str | None = None, workers: int = 1) -> PrepareResult:
    """Streams `config.data.path` into encoded shards per split under `out`.

    Args:
        config: the experiment (`ExperimentConfig`): its `data`, `features`
            and `tasks` are used.
        out: the prepared folder.
        batch_size: rows per record batch; memory is bounded by it and by
            the vocabulary sizes. Defaults to `131_072`.
        shard_batches: batches per output shard (one shard per input file
            at most). Defaults to `8`.
        overwrite: delete a prepared or half-prepared folder of another config.
        engine: `"embedded"` (this process, file after file) or `"ray"`
            (each file's work as a Ray Data task, `mtrec.preparation.ray_engine`;
            the same fitted state and shards).
        ray_address: the Ray cluster for `engine="ray"`; None starts a local
            Ray unless this process already started one.
        workers: with the embedded engine, the number of local processes that
            share the files of each pass (`mtrec.preparation.process_engine`;
            the same fitted state and shards). Defaults to 1: this process.

    Returns:
        A `PrepareResult`.

    Raises:
        ConfigError: the split kind needs the whole table (`random`), or `out`
            holds work of another config (naming the keys that differ).
        SchemaError: a shard's schema differs (naming the file and column),
            or a needed column is missing.
        DataError: a file is unreadable or truncated (named), a split is empty.
    """
    if engine not in ENGINES:
        raise ConfigError(f"The 'engine' parameter must be one of {list(ENGINES)}. Got {engine!r} instead.")
    from mtrec.preparation import process_engine

    workers = process_engine.check_workers(workers)
    for name, value in (("batch_size", batch_size), ("shard_batches", shard_batches)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    started = time.perf_counter()
    out = Path(out)
    split = config.data.split
    check_streamable(split)
    # The tasks are fit here (classes: auto) on a copy: the caller's config stays as given, so
    # its hash keeps matching the folder's. The fitted classes go into the manifest.
    config = dataclasses.replace(config, tasks=copy.deepcopy(config.tasks))
    auto_classes = [t for t in config.tasks if getattr(t, "classes", None) == "auto"]
    wanted = prepared_config(config, batch_size, shard_batches)
    digest = config_hash(wanted)
    work = out / WORK
    resumed = False
    files = input_files(config.data.path)
    inputs = [{"path": str(p.resolve()), "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
              for p, _ in files]
    files, unreadable = drop_unreadable(files, config.data.max_malformed_fraction)
    if (out / MANIFEST).is_file() or (work / "plan.json").is_file():
        found_path = out / MANIFEST if (out / MANIFEST).is_file() else work / "plan.json"
        found = json.loads(found_path.read_text())
        if found.get("config_hash") != digest:
            if not overwrite:
                _refuse_other_config(out, found.get("config", {}), wanted,
                                     "a prepared table" if found_path.name == MANIFEST else "unfinished work")
            shutil.rmtree(out)
        elif found_path.name == MANIFEST and found.get("inputs") != inputs:
            if not overwrite:
                raise ConfigError(
                    f"{out} was prepared from this config, but the input files changed since: "
                    f"{_input_change(found.get('inputs', []), inputs)}. Use --overwrite to prepare again.")
            shutil.rmtree(out)
        elif found_path.name == MANIFEST:
            log.info("%s is already prepared from this config.", out)
            return PrepareResult(out, found, found["rows"], time.perf_counter() - started, False)
        else:
            resumed = True
    work.mkdir(parents=True, exist_ok=True)
    for stale in out.rglob(".*.parquet"):  # temporary files of a killed write
        stale.unlink()

    # The tasks' label and sample-weight columns, and the id columns, are not features.
    exclude = [c for t in config.tasks for c in t.columns] + list(config.data.id_columns)
    first_schema = _file_schema(*files[0])
    encoder = FeatureEncoder(config.features)
    numeric = expand_numeric(encoder.specs, [c for c in first_schema if c not in set(exclude)],
                             str(files[0][0]))
    tables = [spec.name for members in encoder.table_features.values() for spec in members]
    wanted_columns = ({c for c, _ in numeric} | set(tables) | set(exclude)
                      | ({split.column} if split.column else set()))
    missing = sorted(wanted_columns - set(first_schema))
    if missing:
        raise SchemaError(f"Column(s) {missing} needed by the config are missing from "
                          f"{files[0][0].resolve()}. Columns present: {list(first_schema)}")
    needed = [c for c in first_schema if c in wanted_columns]
    check_schemas(files, needed)
    feature_columns = list(dict.fromkeys([c for c, _ in numeric] + tables))
    label_columns = list(dict.fromkeys(t.label for t in config.tasks))
    plan = {"format": FORMAT, "config_hash": digest, "config": wanted, "inputs": inputs,
            "unreadable_inputs": unreadable}
    if resumed and json.loads((work / "plan.json").read_text()).get("inputs") != inputs:
        log.warning("The input files changed since the interrupted run: starting over.")
        for stale in [work, *(out / name for name in SPLIT_NAMES)]:
            shutil.rmtree(stale, ignore_errors=True)
        work.mkdir(parents=True)
        resumed = False
    write_json(work / "plan.json", plan)

    def file_batches(i: int) -> Iterator[tuple[int, pd.DataFrame]]:
        """(batch index in the file, batch) of input file `i`."""
        yield from enumerate(_batches(files[i][0], batch_size, needed, config.data.na_values))

    def each_file(function: Any, starts: list[int] | None) -> Iterator[Any]:
        """`function(i, start)` per input file, results yielded in file order (each file is a unit of
        parallel work: its partial fit and its shards depend on the file and its start only).

        The caller merges each result as it comes, so no more than a few files' partial states
        are held at once. Without known starts (CSV has no row count), each start is the
        previous one plus its rows (`result[-1]`); in parallel, the files' rows are counted
        first, once (`counted_starts`).
        """
        if engine == "ray" or workers > 1:
            yield from map_files(function, list(enumerate(starts if starts is not None else counted_starts())))
            return
        start = 0
        for i in range(len(files)):
            start = starts[i] if starts is not None else start
            result = function(i, start)
            yield result
            start += result[-1]

    starts = _parquet_starts(files)
    # Input files that could not be read to their end in a pass before writing (index -> error): their
    # rows count against data.max_malformed_fraction and later passes skip them (`skip_damaged`).
    damaged: dict[int, str] = {}

    def guarded(function: Any, catch: bool = True) -> Any:
        """`function(i, start)`, or `Damaged` for a file found damaged earlier (or now, with `catch`)."""
        def run(i: int, start: int) -> Any:
            if i in damaged:
                return Damaged(damaged[i], 0)
            try:
                return function(i, start)
            except UnreadableFileError as err:
                if not catch:
                    raise
                return Damaged(str(err), 0)
        return run

    def map_files(function: Any, items: list[tuple[int, int]]) -> Iterator[Any]:
        """`function(i, start)` per item on Ray or on the local worker processes, results in order."""
        if engine == "ray":
            from mtrec.preparation import ray_engine

            return ray_engine.map_files(function, items, ray_address)
        return process_engine.map_files(function, items, workers)

    def counted_starts() -> list[int]:
        """Where each CSV file starts, from its rows counted in parallel; counted once for all passes."""
        nonlocal starts
        rows = [0] * len(files)  # a damaged file's rows are not counted
        count = guarded(lambda i, start: (sum(len(b) for _, b in file_batches(i)),))
        for i, (n,) in undamaged(map_files(count, [(i, 0) for i in range(len(files))])):
            rows[i] = n
        starts = [int(s) for s in np.cumsum([0] + rows[:-1])]
        return starts

    def undamaged(results: Iterator[Any]) -> Iterator[tuple[int, Any]]:
        """`(file index, result)` of the files read to their end; notes the others as damaged."""
        for i, result in enumerate(results):
            if isinstance(result, Damaged):
                damaged.setdefault(i, result.error)
            else:
                yield i, result

    # Pass 0: group counts.
    groups = None
    if split.kind == "group":
        def count_file(i: int, start: int) -> tuple[Any, int]:
            counts, rows = None, 0
            for _, batch in file_batches(i):
                part = GroupSplit.count(batch, split)
                counts = part if counts is None else counts.merge(part)
                rows += len(batch)
            return counts, rows

        counts = None
        for _, (part, _) in undamaged(each_file(guarded(count_file), starts)):
            if part is not None:
                counts = part if counts is None else counts.merge(part)
        groups = GroupSplit.fit(counts, split)

    # Pass 1: fit on the training rows (a partial state per file, merged in file order).
    fit_marker = work / "fit.json"
    if fit_marker.is_file():
        fitted = json.loads(fit_marker.read_text())
        encoder = load_encoder(out)
        sizes, rows, starts = fitted["split_rows"], fitted["rows"], fitted["starts"]
        skipped = fitted.get("damaged", [])
        damaged.update({entry["index"]: entry["error"] for entry in skipped})
        fitted_classes = fitted.get("classes", {})
        apply_classes(config.tasks, fitted_classes)
    else:
        def fit_file(i: int, start: int) -> tuple[Any, np.ndarray, ValueChecks, dict[str, list], int]:
            source = str(files[i][0].resolve())
            state, sizes, position = None, np.zeros(3, dtype=np.int64), start
            checks = ValueChecks()
            classes: dict[str, list] = {task.name: [] for task in auto_classes}
            for _, batch in file_batches(i):
                _labels(config.tasks, batch, source)
                codes = split_codes(batch, split, position, groups)
                sizes += np.bincount(codes, minlength=3)
                checks.update(batch, codes == 0, feature_columns, label_columns, source)
                train = batch if (codes == 0).all() else batch[codes == 0]
                part = encoder.partial_fit(train, f"{source} (train split)", exclude)
                state = part if state is None else state.merge(part)
                for task in auto_classes:
                    classes[task.name] += task.distinct_labels(train[task.label])
                position += len(batch)
            return state, sizes, checks, classes, position - start

        state, sizes_array, checks = None, np.zeros(3, dtype=np.int64), ValueChecks()
        class_values: dict[str, list] = {task.name: [] for task in auto_classes}
        file_rows = [0] * len(files)  # a damaged file's rows are not counted
        # Each file's partial fit is merged as soon as it comes: memory holds one merged state.
        for i, result in undamaged(each_file(guarded(fit_file), starts)):
            part, part_sizes, part_checks, part_classes, file_rows[i] = result
            if part is not None:
                state = part if state is None else state.merge(part)
            sizes_array += part_sizes
            checks.merge(part_checks)
            for name, values in part_classes.items():
                class_values[name] += values
        sizes, rows = [int(s) for s in sizes_array], int(sum(file_rows))
        if starts is None:  # CSV: each file starts after the rows read before it (Parquet: its footers')
            starts = [int(s) for s in np.cumsum([0] + file_rows[:-1])]
        skipped = skip_damaged(damaged, files, file_rows, unreadable, config.data.max_malformed_fraction)
        check_split_sizes(sizes, split)
        # What mtrec train refuses, refused here too (counted over every batch).
        checks.finish(feature_columns, config.data.max_nonfinite_fraction, config.data.path)
        encoder.finish_fit(state, f"{config.data.path} (train split)")
        # classes: auto, fit as in memory: the sorted distinct values of the training labels.
        fitted_classes = {}
        for task in auto_classes:
            task.fit(pd.Series(class_values[task.name]), f"{config.data.path} (train split)")
            fitted_classes[task.name] = task.classes
        save_encoder(encoder, out)
        write_json(fit_marker, {"split_rows": sizes, "rows": rows, "starts": starts, "damaged": skipped,
                                "classes": fitted_classes})
    plan["unreadable_inputs"] = unreadable + [{k: v for k, v in e.items() if k != "index"} for e in skipped]

    # Pass 2: encode and write, unit by unit (a unit: `shard_batches` batches of one file).
    units_dir = work / "units"
    units_dir.mkdir(exist_ok=True)
    units: dict[str, dict[str, Any]] = {}
    for marker in units_dir.glob("*.json"):
        units[marker.stem] = json.loads(marker.read_text())
    done_before = set(units)

    def close(unit: tuple[str, contextlib.ExitStack, dict[str, ParquetBatchWriter]]) -> tuple[str, dict]:
        name, stack, writers = unit
        stack.close()
        record = {split_name: {"path": str(w.path.relative_to(out)), "rows": w.rows_written}
                  for split_name, w in writers.items()}
        write_json(units_dir / f"{name}.json", record)
        return name, record

    def write_file(i: int, start: int) -> tuple[list[tuple[str, dict]], int]:
        source = str(files[i][0].resolve())
        finished: list[tuple[str, dict]] = []
        current: tuple[str, contextlib.ExitStack, dict[str, ParquetBatchWriter]] | None = None
        position = start
        try:
            for j, batch in file_batches(i):
                name = f"{i:05d}-{j // shard_batches:04d}"
                first, position = position, position + len(batch)
                if name in done_before:
                    continue
                if current is None or current[0] != name:
                    if current is not None:
                        finished.append(close(current))
                    current = (name, contextlib.ExitStack(), {})
                codes = split_codes(batch, split, first, groups)
                positions = np.arange(first, first + len(batch), dtype=np.int64)
                # Encode the batch once, then cut the (compact) arrays by split.
                arrays = encoder.transform(batch, source)
                labels = _labels(config.tasks, batch, source)
                ids = batch[list(config.data.id_columns)]
                for k, split_name in enumerate(SPLIT_NAMES):
                    mask = codes == k
                    if not mask.any():
                        continue
                    chosen = slice(None) if mask.all() else mask
                    table = encoded_table({key: v[chosen] for key, v in arrays.items()},
                                          {key: v[chosen] for key, v in labels.items()},
                                          ids[chosen], positions[chosen])
                    writers = current[2]
                    if split_name not in writers:
                        writers[split_name] = current[1].enter_context(ParquetBatchWriter(
                            out / split_name / f"part-{name}.parquet", schema=table.schema,
                            use_dictionary=False))
                    writers[split_name].write(table)
            if current is not None:
                finished.append(close(current))
                current = None
        except BaseException:
            if current is not None:  # the unit's temporary files are deleted, nothing is renamed
                current[1].__exit__(*sys.exc_info())
            raise
        return finished, position - start

    readable = [i for i in range(len(files)) if i not in damaged]
    if engine == "embedded" and workers > 1 and readable:
        # The lookups build their indexes on first use: build them once here, before the workers
        # fork and inherit them, rather than once in every worker (on a file read to its end).
        first = files[readable[0]][0]
        row = next(_batches(first, 1, needed, config.data.na_values), None)
        if row is not None:
            encoder.transform(row, str(first.resolve()))
    for result in each_file(guarded(write_file, catch=False), starts):  # damaged files skipped, not written
        if not isinstance(result, Damaged):
            units.update(result[0])

    manifest = _manifest(out, plan, encoder, units, sizes, rows, batch_size)
    manifest["classes"] = fitted_classes  # classes: auto as fit (mtrec train sets them: apply_classes)
    write_json(out / MANIFEST, manifest)
    shutil.rmtree(work, ignore_errors=True)
    return PrepareResult(out, manifest, rows, time.perf_counter() - started, resumed)


def apply_classes(tasks: list[Any], classes: dict[str, list[Any]]) -> None:
    """Sets the `classes: auto` of `tasks` to the classes a prepared folder fit (its manifest's `classes`)."""
    for task in tasks:
        if task.name in classes and getattr(task, "classes", None) == "auto":
            task.classes = list(classes[task.name])
            task.num_classes = len(task.classes)


class Damaged(NamedTuple):
    """The result of a pass's work on an input file that could not be read to its end."""

    error: str
    rows: int  # last, as every per-file result's row count (`each_file`)


def skip_damaged(damaged: dict[int, str], files: list[tuple[Path, str]], file_rows: list[int],
                 unreadable: list[dict[str, Any]], max_fraction: float) -> list[dict[str, Any]]:
    """Counts the files damaged in the middle against `data.max_malformed_fraction`, as truncated ones.

    A file that fails mid-read (a Parquet page checksum, a `.csv.gz` cut short) is left out
    whole: its rows are its footer's count (Parquet), or estimated from its size at the other
    files' bytes per row (CSV). With the shards left out before reading (`drop_unreadable`),
    they may be skipped up to `max_fraction` of all rows, with a warning naming each.

    Args:
        damaged: input file index -> the read error.
        files: the input files read.
        file_rows: rows read from each file (those of a damaged file are not counted).
        unreadable: the shards left out before reading (their `estimated_rows`).
        max_fraction: `data.max_malformed_fraction`.

    Returns:
        A record per damaged file (index, path, bytes, error, estimated rows).

    Raises:
        DataError: the share of rows left out is above `max_fraction`, naming the files and the error.
    """
    if not damaged:
        return []
    good = [i for i in range(len(files)) if i not in damaged]
    good_rows = sum(file_rows[i] for i in good)
    good_bytes = sum(files[i][0].stat().st_size for i in good)
    entries = []
    for i, error in sorted(damaged.items()):
        path, kind = files[i]
        size = path.stat().st_size
        if kind == "parquet":
            rows = pq.read_metadata(path).num_rows
        else:
            rows = int(round(size * good_rows / good_bytes)) if good_bytes else 0
        entries.append({"index": i, "path": str(path.resolve()), "bytes": size, "error": error,
                        "estimated_rows": int(rows)})
    lost = sum(e["estimated_rows"] for e in entries) + sum(e.get("estimated_rows", 0) for e in unreadable)
    share = lost / max(lost + good_rows, 1)
    names = ", ".join(e["path"] for e in entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    if share > max_fraction or not good_rows:
        raise DataError(
            f"{entries[0]['error'].rstrip('.')}. The rows of {names} (about {lost:,} rows with any shard left out "
            f"before, {share:.2%} of the input) are more than data.max_malformed_fraction={max_fraction:g}. "
            "Restore the file, or raise the fraction to skip it.")
    warnings.warn(f"Skipped damaged file(s) {names}: {entries[0]['error']} About {lost:,} rows ({share:.3%}) "
                  f"left out, within data.max_malformed_fraction={max_fraction:g}.", UserWarning, stacklevel=3)
    return entries


def drop_unreadable(files: list[tuple[Path, str]], max_fraction: float) -> tuple[list[tuple[Path, str]],
                                                                                 list[dict[str, Any]]]:
    """Leaves out Parquet shards whose footer cannot be read (truncated), counted as malformed rows.

    A truncated shard's rows are unknown (the row count is in the lost
    footer): they are estimated from its size at the readable shards' bytes
    per row. Like malformed rows of a CSV loader, they may be skipped up to
    `data.max_malformed_fraction` of all rows, with a warning naming each.

    Returns:
        The readable files, and a record per shard left out (path, bytes, estimated rows).

    Raises:
        DataError: the estimated share of unreadable rows is above
            `max_fraction` (naming the shards), or no shard is readable.
    """
    readable, bad, good_rows, good_bytes = [], [], 0, 0
    for path, kind in files:
        if kind != "parquet":
            readable.append((path, kind))
            continue
        try:
            with pq.ParquetFile(path) as file:
                good_rows += file.metadata.num_rows
            good_bytes += path.stat().st_size
            readable.append((path, kind))
        except (pa.ArrowException, OSError) as err:
            bad.append({"path": str(path.resolve()), "bytes": path.stat().st_size, "error": str(err)})
    if not bad:
        return files, []
    if not good_rows:
        raise DataError(f"No input shard is readable: {bad[0]['path']} (and {len(bad) - 1} more) cannot be "
                        f"read (truncated or not Parquet?): {bad[0]['error']}")
    for entry in bad:
        entry["estimated_rows"] = int(round(entry["bytes"] * good_rows / good_bytes))
    lost = sum(e["estimated_rows"] for e in bad)
    share = lost / (lost + good_rows)
    names = ", ".join(e["path"] for e in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    if share > max_fraction:
        raise DataError(
            f"Cannot read {names} (truncated or not Parquet?): {bad[0]['error'].rstrip('.')}. Its rows (about "
            f"{lost:,} rows, {share:.2%} of the input, estimated from the size) are more than "
            f"data.max_malformed_fraction={max_fraction:g}. Restore the shard, or raise the fraction to skip it.")
    warnings.warn(f"Skipped unreadable (truncated?) shard(s) {names}: about {lost:,} rows ({share:.3%}), within "
                  f"data.max_malformed_fraction={max_fraction:g}.", UserWarning, stacklevel=3)
    return readable, bad


def _parquet_starts(files: list[tuple[Path, str]]) -> list[int] | None:
    """The position of each file's first row, from the Parquet footers; None when a file is CSV."""
    if any(kind != "parquet" for _, kind in files):
        return None
    starts, position = [], 0
    for path, _ in files:
        starts.append(position)
        try:
            with pq.ParquetFile(path) as file:
                position += file.metadata.num_rows
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"Cannot read {path.resolve()} (truncated or not Parquet?): {err}") from err
    return starts


def _input_change(before: list[dict[str, Any]], now: list[dict[str, Any]]) -> str:
    """The first difference between two input fingerprints, in words."""
    old, new = {i["path"]: i for i in before}, {i["path"]: i for i in now}
    for path in new:
        if path not in old:
            return f"{path} is new"
        if old[path] != new[path]:
            return f"{path} was rewritten ({old[path]['bytes']:,} -> {new[path]['bytes']:,} bytes)"
    gone = [p for p in old if p not in new]
    return f"{gone[0]} is gone" if gone else "the file order changed"


def _labels(tasks: list[Any], frame: pd.DataFrame, source: str) -> dict[str, np.ndarray]:
    from mtrec.training.prepare import encode_labels  # the in-memory path's label checks

    return encode_labels(tasks, frame, source)


def _manifest(out: Path, plan: dict[str, Any], encoder: FeatureEncoder, units: dict[str, dict[str, Any]],
              sizes: list[int], rows: int, batch_size: int) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    schema = None
    for k, name in enumerate(SPLIT_NAMES):
        shards = []
        for unit in sorted(units):
            entry = units[unit].get(name)
            if entry is None:
                continue
            if schema is None:
                schema = pq.read_schema(out / entry["path"])
            shards.append({"path": entry["path"], "rows": entry["rows"]})
        written = sum(s["rows"] for s in shards)
        if written != sizes[k]:
            raise DataError(f"The {name} shards of {out} hold {written:,} rows, but the fit pass "
                            f"counted {sizes[k]:,}: the input changed while preparing. Rerun.")
        splits[name] = {"rows": written, "shards": shards}
    layout = encoder.layout()
    return {
        "format": FORMAT, "version": VERSION,
        "config_hash": plan["config_hash"], "config": plan["config"],
        "rows": rows, "batch_size": batch_size,
        "inputs": plan["inputs"],
        "unreadable_inputs": plan.get("unreadable_inputs", []),
        "encoder": "features.json",
        "schema": {f.name: str(f.type) for f in schema} if schema is not None else {},
        "numeric_key": NUMERIC_KEY, "numeric_columns": list(encoder.numeric_columns_),
        "layout": layout,
        "splits": splits,
    }


__all__ = ["PrepareResult", "check_schemas", "config_hash", "differing_keys", "encoded_table",
           "input_files", "prepare", "prepared_config", "read_manifest", "read_prepared"]

"""Prepared shards -> `tf.data` batches for Keras, streamed: memory by the shuffle buffer, not the rows.

The shards of one split are read in record batches with pyarrow; when
shuffling, `INTERLEAVE` files are read at a time in turn (files
interleaved, in a seeded order afresh each epoch), rows are shuffled in a
buffer of `shuffle_rows` rows, cut into batches and handed to `tf.data`
with a fixed signature, then prefetched. Across processes each reads only its own part of a
split (`part`: a contiguous, equal share of the split's rows, from the manifest's row counts),
so a process opens only the shards that hold its rows. The batches are the in-memory path's: the
`FeatureEncoder.transform` arrays (`numeric` float32 `(b, d)`, int32 ids
`(b,)`, int32 `(b, length)` lists) and float32 `(b, 1)` labels by task with
NaN for missing (`(b, 2)`: label and weight, for a task with
`sample_weight`). Keras takes a `tf.data.Dataset` on the TensorFlow and JAX
backends alike.

Example:

```python
train = prepared_dataset("prepared/", "train", batch_size=512, shuffle_rows=200_000, seed=1)
model.fit(train, validation_data=prepared_dataset("prepared/", "valid", batch_size=4096), epochs=2)
```
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mtrec.preparation.streaming import LABEL_PREFIX, read_manifest

#: Rows read from a shard at a time.
READ_ROWS = 65_536
#: Rows per block handed from Python to tf.data (rounded down to whole batches).
BLOCK_ROWS = 65_536
#: Shards read at a time, in turn, when shuffling: rows of files written in order (by time,
#: by user) meet in the shuffle buffer.
INTERLEAVE = 4


def _column_array(column: pa.ChunkedArray) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        return array.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    return array.to_numpy(zero_copy_only=False)


#: A piece of a shard: its path and the rows `[start, stop)` to read (`stop` None: to its end).
Piece = tuple[Path, int, "int | None"]


def part_rows(rows: int, part: tuple[int, int] | None, multiple: int = 1) -> int:
    """Rows of one part of a split of `rows` rows: `rows // parts`, rounded down to a multiple of `multiple`.

    Every part gets as many rows, so processes reading one part each run the same number of
    batches of the same sizes; the split's last `rows - parts * part_rows` rows are left out.
    """
    if part is None or part[1] == 1:
        return rows
    return rows // part[1] // multiple * multiple


def part_pieces(shards: list[dict[str, Any]], folder: Path, part: tuple[int, int] | None,
                multiple: int = 1) -> list[Piece]:
    """The shards (or parts of shards) that hold one part's rows, in the prepared order.

    Args:
        shards: the manifest's shard entries of one split (`path`, `rows`).
        folder: the prepared folder.
        part: `(index, parts)`: this part's contiguous share of the split's rows
            (`part_rows`); None (or one part): every shard, whole.
        multiple: each part's rows are a multiple of this (the local devices).

    Returns:
        `(path, start, stop)` pieces; a shard wholly outside the part is not among them.
    """
    if part is None or part[1] == 1:
        return [(folder / s["path"], 0, None) for s in shards]
    index, _ = part
    share = part_rows(sum(int(s["rows"]) for s in shards), part, multiple)
    begin, end = index * share, (index + 1) * share
    pieces: list[Piece] = []
    offset = 0
    for shard in shards:
        rows = int(shard["rows"])
        start, stop = max(begin, offset), min(end, offset + rows)
        if start < stop:
            pieces.append((folder / shard["path"], start - offset, stop - offset))
        offset += rows
    return pieces


def iter_prepared_batches(folder: str | Path, split: str, batch_size: int, shuffle_rows: int = 0,
                          seed: int | None = None, epoch: int = 0,
                          labels: bool = True, part: tuple[int, int] | None = None,
                          part_multiple: int = 1) -> Iterator[Any]:
    """Yields the batches of one split as numpy dicts (one epoch).

    Args:
        folder: the prepared folder (`mtrec prepare --out`).
        split: `"train"`, `"valid"` or `"test"`.
        batch_size: rows per batch (the last may have fewer).
        shuffle_rows: rows of the shuffle buffer; 0 keeps the prepared order.
        seed: seed of the shuffle; with `epoch`, each epoch gets its own order.
        epoch: the epoch number.
        labels: yield `(features, labels)`; else `features` alone.
        part: `(index, parts)`: read only this part of the split (`part_pieces`), e.g.
            `(process_index, process_count)` when each process feeds its own rows.
        part_multiple: each part's rows are a multiple of this.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    shards = part_pieces(manifest["splits"][split]["shards"], folder, part, part_multiple)
    # Each part shuffles its rows in an order of its own; one part (or none) as a single process does.
    key = [seed if seed is not None else 0, epoch] + ([part[0]] if part is not None and part[1] > 1 else [])
    rng = np.random.default_rng(key) if shuffle_rows else None
    if rng is not None:
        shards = [shards[i] for i in rng.permutation(len(shards))]
    feature_columns, label_columns = _columns(manifest)
    pending: list[dict[str, np.ndarray]] = []
    pending_rows = 0
    window = max(shuffle_rows, batch_size)

    def emit(final: bool) -> Iterator[Any]:
        nonlocal pending, pending_rows
        if not pending:
            return
        merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
        n = pending_rows
        if rng is not None:
            order = rng.permutation(n)
            merged = {k: v[order] for k, v in merged.items()}
        stop = n if final else n - n % batch_size
        for start in range(0, stop, batch_size):
            features = {k: merged[k][start:start + batch_size] for k in feature_columns}
            if labels:
                yield features, {task: label_array(merged[c][start:start + batch_size])
                                 for task, c in label_columns.items()}
            else:
                yield features
        rest = {k: v[stop:] for k, v in merged.items()}
        pending, pending_rows = ([rest], n - stop) if n > stop else ([], 0)

    wanted = list(feature_columns) + (list(label_columns.values()) if labels else [])
    for batch in _record_batches(shards, wanted, INTERLEAVE if rng is not None else 1):
        pending.append({name: _column_array(batch.column(name)) for name in wanted})
        pending_rows += batch.num_rows
        if pending_rows >= window:
            yield from emit(final=False)
    yield from emit(final=True)


def _record_batches(shards: list[Piece], columns: list[str], interleave: int) -> Iterator[pa.RecordBatch]:
    """Record batches of `shards`, `interleave` files open at a time and read in turn.

    With `interleave` 1, the shards' rows in order.
    """
    queue, open_files = list(shards), []
    try:
        while queue or open_files:
            while queue and len(open_files) < interleave:
                file = pq.ParquetFile(queue[0][0])
                open_files.append((file, _piece_batches(file, *queue.pop(0)[1:], columns)))
            for entry in list(open_files):
                batch = next(entry[1], None)
                if batch is None:
                    entry[0].close()
                    open_files.remove(entry)
                elif batch.num_rows:
                    yield batch
    finally:
        for file, _ in open_files:
            file.close()


def _piece_batches(file: pq.ParquetFile, start: int, stop: int | None,
                   columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The record batches of rows `[start, stop)` of an open shard, reading only the row groups that hold them."""
    if start == 0 and stop is None:
        yield from file.iter_batches(batch_size=READ_ROWS, columns=columns)
        return
    stop = file.metadata.num_rows if stop is None else stop
    groups, first = [], None
    offset = 0
    for i in range(file.metadata.num_row_groups):
        rows = file.metadata.row_group(i).num_rows
        if offset < stop and offset + rows > start:
            groups.append(i)
            first = offset if first is None else first
        offset += rows
    if not groups:
        return
    position = first  # the row number of the next batch's first row
    for batch in file.iter_batches(batch_size=READ_ROWS, columns=columns, row_groups=groups):
        lo, hi = max(start, position), min(stop, position + batch.num_rows)
        if lo < hi:
            yield batch.slice(lo - position, hi - lo)
        position += batch.num_rows
        if position >= stop:
            return


def read_prepared_arrays(folder: str | Path, split: str, columns: list[str] | None = None,
                         limit: int | None = None) -> dict[str, np.ndarray]:
    """Columns of one split's shards as numpy arrays, in the prepared order.

    Args:
        folder: the prepared folder.
        split: `"train"`, `"valid"` or `"test"`.
        columns: shard columns (`row`, the feature columns, `label.<task>`);
            by default the features, the labels and `row`.
        limit: read only the first `limit` rows (a bounded sample).

    Returns:
        One array per column; fixed-size lists as `(n, width)` arrays.
    """
    manifest = read_manifest(folder)
    if columns is None:
        features, labels = _columns(manifest)
        columns = ["row", *features, *labels.values()]
    parts: list[dict[str, np.ndarray]] = []
    rows = 0
    for block in read_prepared_blocks(folder, split, columns):
        if limit is not None and rows >= limit:
            break
        if limit is not None:
            block = {name: values[:limit - rows] for name, values in block.items()}
        parts.append(block)
        rows += len(block[columns[0]])
    if not parts:
        return {name: _empty(manifest["schema"][name]) for name in columns}
    return {name: np.concatenate([p[name] for p in parts]) for name in columns}


def read_prepared_blocks(folder: str | Path, split: str, columns: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Columns of one split's shards, a record batch (up to `READ_ROWS` rows) at a time, in the prepared order.

    Args:
        folder: the prepared folder.
        split: `"train"`, `"valid"` or `"test"`.
        columns: shard columns (`row`, the feature columns, `label.<task>`).

    Yields:
        One array per column; fixed-size lists as `(n, width)` arrays.
    """
    folder = Path(folder)
    shards = part_pieces(read_manifest(folder)["splits"][split]["shards"], folder, None)
    for batch in _record_batches(shards, columns, 1):
        yield {name: _column_array(batch.column(name)) for name in columns}


def label_array(values: np.ndarray) -> np.ndarray:
    """A label column as the model's label array: `(n, 1)`, or `(n, 2)` (label, sample weight) as stored."""
    return values if values.ndim == 2 else values.reshape(-1, 1)


def prepared_columns(folder: str | Path) -> tuple[list[str], dict[str, str]]:
    """The shard columns of a prepared folder: the model's inputs, and the label column by task."""
    return _columns(read_manifest(folder))


def _empty(arrow_type: str) -> np.ndarray:
    if arrow_type.startswith("fixed_size_list"):
        width = int(arrow_type.rsplit("[", 1)[1].rstrip("]"))
        return np.zeros((0, width), np.float32 if "float" in arrow_type else np.int32)
    return np.zeros(0, {"float": np.float32, "int64": np.int64}.get(arrow_type, np.int32))


def prepared_dataset(folder: str | Path, split: str, batch_size: int, shuffle_rows: int = 0,
                     seed: int | None = None, labels: bool = True,
                     epoch_of: Callable[[], int] | None = None, part: tuple[int, int] | None = None,
                     part_multiple: int = 1) -> Any:
    """A `tf.data.Dataset` of the batches of one prepared split, reshuffled each epoch.

    Args:
        folder: the prepared folder.
        split: `"train"`, `"valid"` or `"test"`.
        batch_size: rows per batch.
        shuffle_rows: rows of the shuffle buffer (memory: about this many
            encoded rows); 0 keeps the prepared order (validation, test).
        seed: seed of the shuffle.
        labels: yield `(features, labels)`; else features alone (scoring).
        epoch_of: the number of the epoch about to be read, whose shuffle
            order to use (`ShuffleEpoch.current` in `fit`: a run resumed at
            epoch k reads epoch k's order, as the uninterrupted run did).
            Defaults to counting the passes over the dataset from 0.
        part: `(index, parts)`: only this part of the split's rows (`iter_prepared_batches`);
            `batch_size` is then this part's share of each global batch.
        part_multiple: each part's rows are a multiple of this.

    Returns:
        A `tf.data.Dataset`, prefetched.
    """
    import tensorflow as tf  # the data path is TensorFlow's; layers never import it

    manifest = read_manifest(folder)
    feature_columns, label_columns = _columns(manifest)
    signature = {name: _spec(manifest["schema"][name]) for name in feature_columns}
    if labels:
        signature = (signature, {task: tf.TensorSpec((None, _width(manifest["schema"][c])), tf.float32)
                                 for task, c in label_columns.items()})
    if epoch_of is None:
        epoch_of = itertools.count().__next__  # the passes over the dataset, counted from 0
    # Python hands over blocks of whole batches (one call per block, not per batch);
    # tf.data cuts them into batches.
    block = batch_size * max(1, BLOCK_ROWS // batch_size)

    def generate() -> Iterator[Any]:
        yield from iter_prepared_batches(folder, split, block, shuffle_rows, seed, epoch_of(), labels,
                                         part, part_multiple)

    def cut(*block_tensors: Any) -> Any:
        data = block_tensors if len(block_tensors) > 1 else block_tensors[0]
        rows = tf.cast(tf.shape(tf.nest.flatten(data)[0])[0], tf.int64)
        return tf.data.Dataset.range(0, rows, batch_size).map(
            lambda start: tf.nest.map_structure(lambda t: t[start:start + batch_size], data))

    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).flat_map(cut)
    # The batch count is known: Keras then sees a finite epoch, not a generator that ran out.
    rows = part_rows(manifest["splits"][split]["rows"], part, part_multiple)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-rows // batch_size)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _columns(manifest: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    layout = manifest["layout"]
    features = ([manifest["numeric_key"]] if layout["numeric_dim"] else []) + list(layout["categorical"]) \
        + list(layout["multi_categorical"])
    labels = {name[len(LABEL_PREFIX):]: name for name in manifest["schema"] if name.startswith(LABEL_PREFIX)}
    return features, labels


def _width(arrow_type: str) -> int:
    """Values per row of a shard column: a fixed list's size, else 1."""
    return int(arrow_type.rsplit("[", 1)[1].rstrip("]")) if arrow_type.startswith("fixed_size_list") else 1


def _spec(arrow_type: str) -> Any:
    import tensorflow as tf

    if arrow_type.startswith("fixed_size_list"):
        width = int(arrow_type.rsplit("[", 1)[1].rstrip("]"))
        dtype = tf.float32 if "float" in arrow_type else tf.int32
        return tf.TensorSpec((None, width), dtype)
    return tf.TensorSpec((None,), tf.float32 if arrow_type == "float" else tf.int32)

"""Streamed training: the splits read from a prepared folder's encoded shards, not held in memory.

`mtrec train` trains on arrays in memory (`make_dataset`, the fast path) or
streams the shards of a folder written by `mtrec prepare`
(`mtrec.preparation.prepared_dataset`: files interleaved, a shuffle buffer
of `training.shuffle_rows` rows, batches, prefetch), as `training.in_memory`
says:

- `true`: in memory; with `data.prepared`, its shards are read into arrays.
- `false`: streamed from `data.prepared`, or from `data.path` prepared into
  `RUN_DIR/prepared` first (the streamed `mtrec prepare`; a rerun reuses it).
- `"auto"` (default): in memory unless the input holds more than
  `IN_MEMORY_MAX_ROWS` rows (Parquet footers, or the prepared folder's
  manifest) or, for CSV, which has no row count, more than
  `IN_MEMORY_MAX_BYTES` bytes. Rows from the synthetic generator or a frame
  passed to `train` are in memory already.

Streamed, the fitted encoder is the prepared folder's (saved as the run's
`features.json`, so scoring and export work as on any run); validation
during `fit` and the report's valid/test metrics stream over their shards,
collecting only their predictions and labels (rows x tasks floats); the
training labels are read a block at a time for the tasks' label state and
the constant baselines (`fit_tasks_on_shards`, `training_totals`). What
needs arrays gets a bounded sample, each split's first rows in the
prepared order (`SampledSplit`): building the model, the weighting
strategy's split of shared and task variables, and the `training.analysis`
loggers (computed on those rows rather than on a random sample of the
split: approximate).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mtrec.data.splits import STREAMED_SPLIT_KINDS
from mtrec.errors import ConfigError, DataError
from mtrec.training.prepare import SPLIT_NAMES, EncodedSplit, PreparedData

logger = logging.getLogger(__name__)

#: `training.in_memory: auto` trains in memory up to this many input rows (about 1 GB of
#: memory per million rows of a 23-column click log, issue 12's measurement).
IN_MEMORY_MAX_ROWS = 2_000_000
#: The same for CSV input, whose rows are not counted without reading it: bytes on disk.
IN_MEMORY_MAX_BYTES = 512 * 2**20
#: Rows of each split's sample when streamed (at least; `training.analysis.rows` when larger).
SAMPLE_ROWS = 2048
#: Where `data.path` is prepared when streamed without `data.prepared`.
PREPARED_FOLDER = "prepared"


@dataclasses.dataclass
class SampledSplit(EncodedSplit):
    """A streamed split's first rows (`features`, `labels`, `index`), a bounded sample.

    `len()` is the whole split's row count (`rows`), as for an in-memory split,
    so sizes, reports and batch checks read the same; the arrays hold fewer.
    """

    rows: int = 0

    def __len__(self) -> int:
        return self.rows


def input_size(path: Any) -> tuple[int | None, int]:
    """Rows (None when a file is CSV) and bytes on disk of `data.path`.

    Raises:
        DataError: a file is missing or unreadable, named.
    """
    from mtrec.preparation.streaming import input_files

    files = input_files(path)
    size = sum(p.stat().st_size for p, _ in files)
    if any(kind != "parquet" for _, kind in files):
        return None, size
    rows = 0
    for file, _ in files:
        try:
            rows += pq.read_metadata(file).num_rows
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"Cannot read {file.resolve()} (truncated or not Parquet?): {err}") from err
    return rows, size


def use_in_memory(config: Any, frame: Any = None) -> bool:
    """Whether this run trains on arrays in memory (see the module docstring for `training.in_memory`).

    Raises:
        ConfigError: a frame passed to `train` with `data.prepared` or
            `training.in_memory: false`.
    """
    setting = config.training.in_memory
    if frame is not None:
        if config.data.prepared:
            raise ConfigError("train() got a frame and the config sets data.prepared: give one source of rows.")
        if setting is False:
            raise ConfigError("training.in_memory: false streams data.prepared or data.path; the frame passed "
                              "to train() is in memory already. Set training.in_memory: auto or true.")
        return True
    if setting != "auto":
        return bool(setting)
    if config.data.prepared:
        from mtrec.preparation.streaming import read_manifest

        return read_manifest(config.data.prepared)["rows"] <= IN_MEMORY_MAX_ROWS
    if not config.data.path:
        return True  # the synthetic generator
    rows, size = input_size(config.data.path)
    small = rows <= IN_MEMORY_MAX_ROWS if rows is not None else size <= IN_MEMORY_MAX_BYTES
    if not small and config.data.split.kind not in STREAMED_SPLIT_KINDS:
        logger.warning(
            "%s holds %s; training.in_memory: auto would stream it, but data.split.kind '%s' permutes "
            "every row, so it is read into memory. data.split.kind: hash (or group, time) streams.",
            config.data.path, f"{rows:,} rows" if rows is not None else f"{size:,} bytes", config.data.split.kind)
        return True
    return small


def check_prepared(config: Any, folder: str | Path) -> dict[str, Any]:
    """The manifest of `folder`, after checking it was prepared from this config's data, features and tasks.

    `data.path` is compared by the files it names (when the config sets it);
    the prepare batch layout is not compared.

    Raises:
        ConfigError: the folder was prepared from another config, naming
            the keys that differ and their values.
        DataError: the folder is not a complete prepared folder.
    """
    from mtrec.preparation.streaming import differing_keys, input_files, prepared_config, read_manifest

    manifest = read_manifest(folder)
    found = manifest.get("config", {})
    layout = found.get("layout", {})
    wanted = prepared_config(config, layout.get("batch_size"), layout.get("shard_batches"))
    keys = []
    if config.data.path:
        files = [str(p.resolve()) for p, _ in input_files(config.data.path)]
        if files != [entry["path"] for entry in manifest.get("inputs", [])]:
            keys.append("data.path")
    wanted["data"]["path"] = found.get("data", {}).get("path")  # compared by its files, above
    keys += differing_keys(found, wanted)
    if keys:
        shown = "; ".join(f"{key}: {_value(found, key)!r} there, {_value(wanted, key)!r} here"
                          if key != "data.path" else
                          f"data.path: {[i['path'] for i in manifest.get('inputs', [])]} there, "
                          f"{config.data.path!r} here" for key in keys[:8])
        raise ConfigError(
            f"data.prepared {folder} was prepared from another config; the keys that differ: {shown}"
            f"{' ...' if len(keys) > 8 else ''}. Prepare it from this config (mtrec prepare -c CONFIG "
            f"--out DIR) and point data.prepared there.")
    return manifest


def _value(tree: Any, key: str) -> Any:
    for part in key.split("."):
        if isinstance(tree, list) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        elif isinstance(tree, dict) and part in tree:
            tree = tree[part]
        else:
            return "<absent>"
    return tree


def load_training_data(config: Any, run_dir: Path, frame: Any = None, overwrite: bool = False) -> PreparedData:
    """The run's fitted encoder and splits: in memory (`prepare`), or streamed from a prepared folder.

    Args:
        config: the experiment.
        run_dir: the run directory (`data.path` is prepared into
            `RUN_DIR/prepared` when streamed without `data.prepared`).
        frame: rows passed to `train` (in memory).
        overwrite: replace a `RUN_DIR/prepared` of another config.

    Returns:
        A `PreparedData`; streamed, its `shards` is the prepared folder and
        its splits are `SampledSplit`s.
    """
    from mtrec.training.prepare import prepare

    in_memory = use_in_memory(config, frame)
    if not config.data.prepared and in_memory:
        return prepare(config, frame)
    if config.data.prepared:
        folder = Path(config.data.prepared)
        manifest = check_prepared(config, folder)
    else:
        from mtrec.preparation import prepare as prepare_shards

        folder = run_dir / PREPARED_FOLDER
        result = prepare_shards(config, folder, overwrite=overwrite)
        manifest = result.manifest
        logger.info("Prepared %s rows into %s (%.0f rows/s).", f"{result.rows:,}", folder,
                    result.rows_per_second)
    from mtrec.preparation.streaming import apply_classes

    apply_classes(config.tasks, manifest.get("classes", {}))  # classes: auto, as the folder fit them
    data = arrays_from_shards(folder) if in_memory else streamed_data(config, folder)
    fit_tasks_on_shards(config.tasks, data)
    return data


def fit_tasks_on_shards(tasks: list[Any], data: PreparedData) -> None:
    """Fits the tasks' label state (a regression's mean and sd, a count's offset) on the training
    labels, as the in-memory `prepare` does; changes `tasks` in place.

    The shards' labels are the checked label values (`Task.prepare_labels`). They are read a
    block at a time (`label_blocks`) and each task's `label_moments` of the blocks are merged,
    so memory does not grow with the rows; `Task.fit_moments` then fits what `Task.fit` fits on
    the whole column.
    """
    from mtrec.features.partial import Moments

    moments = {task.name: Moments() for task in tasks}
    for labels in label_blocks(data, "train"):
        for task in tasks:
            values = labels[task.name]
            weights = values[:, 1] if values.shape[1] > 1 else None  # sample_weight: 0 where the label is missing
            moments[task.name] = moments[task.name].merge(task.label_moments(values[:, 0], weights))
    for task in tasks:
        task.fit_moments(moments[task.name], "the prepared training labels")


def label_blocks(prepared: PreparedData, name: str) -> Any:
    """A split's labels by task, `(n, 1)` (or `(n, 2)`: label, weight) float32, a block of rows at a time.

    In memory: one block, the split's arrays. Streamed: a record batch of the shards at a time.
    """
    if prepared.shards is None:
        yield prepared.splits[name].labels
        return
    from mtrec.preparation.reader import label_array, prepared_columns, read_prepared_blocks

    _, labels = prepared_columns(prepared.shards)
    for arrays in read_prepared_blocks(prepared.shards, name, list(labels.values())):
        yield {task: label_array(arrays[c]) for task, c in labels.items()}


def training_totals(tasks: list[Any], prepared: PreparedData) -> dict[str, np.ndarray]:
    """The training labels' `evaluation.baseline_totals` by task (the report's constant baselines), summed
    over blocks of rows so that memory does not grow with them."""
    from mtrec.training.evaluation import baseline_totals

    totals: dict[str, np.ndarray] = {}
    for labels in label_blocks(prepared, "train"):
        for task in tasks:
            part = baseline_totals(task, labels[task.name])
            totals[task.name] = part if task.name not in totals else totals[task.name] + part
    return totals


def _split(arrays: dict[str, np.ndarray], features: list[str], labels: dict[str, str]) -> dict[str, Any]:
    from mtrec.preparation.reader import label_array

    return {"features": {k: arrays[k] for k in features},
            "labels": {task: label_array(arrays[c]) for task, c in labels.items()},
            "index": arrays["row"]}


def arrays_from_shards(folder: Path) -> PreparedData:
    """A prepared folder read whole into memory: the in-memory path's `PreparedData`."""
    from mtrec.preparation.reader import prepared_columns, read_prepared_arrays
    from mtrec.preparation.streaming import read_prepared

    _, encoder = read_prepared(folder)
    features, labels = prepared_columns(folder)
    return PreparedData(encoder, {name: EncodedSplit(**_split(read_prepared_arrays(folder, name), features, labels))
                                  for name in SPLIT_NAMES})


def streamed_data(config: Any, folder: Path) -> PreparedData:
    """A prepared folder for streamed training: its encoder and a `SampledSplit` per split."""
    from mtrec.preparation.reader import prepared_columns, read_prepared_arrays
    from mtrec.preparation.streaming import read_prepared

    manifest, encoder = read_prepared(folder)
    features, labels = prepared_columns(folder)
    limit = max(SAMPLE_ROWS, config.training.analysis.rows)
    splits = {name: SampledSplit(**_split(read_prepared_arrays(folder, name, limit=limit), features, labels),
                                 rows=int(manifest["splits"][name]["rows"]))
              for name in SPLIT_NAMES}
    return PreparedData(encoder, splits, shards=folder)


class ShuffleEpoch(keras.callbacks.Callback):
    """Tells the streamed training input which epoch `fit` is in, so that each epoch's order is its own.

    Keras numbers the epochs from the resumed one (`on_epoch_begin`), before
    the epoch's input is read; the reader shuffles with `(seed, epoch)`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def current(self) -> int:
        """The epoch `fit` is in."""
        return self.epoch


def fit_inputs(config: Any, folder: Path, has_valid: bool) -> tuple[Any, Any, ShuffleEpoch]:
    """The streamed `tf.data` inputs of `fit`: training (shuffled, the run's seed) and validation.

    Returns:
        The training and validation datasets, and the callback that `fit`
        must get for the training input to follow its epochs (a resumed run
        then reads each epoch in the uninterrupted run's order).
    """
    from mtrec.preparation.reader import prepared_dataset
    from mtrec.training.distribution import process_local, process_part

    # Across processes each reads only its own part of each split, in batches of its share of the
    # global batch (the batch sizes divide by the devices: distribution.check_batch_sizes).
    part, devices = process_part()
    parts = part[1] if part is not None else 1

    def read(split: str, batch_size: int, **shuffle: Any) -> Any:
        dataset = prepared_dataset(folder, split, batch_size // parts, part=part, part_multiple=devices, **shuffle)
        return process_local(dataset) if part is not None else dataset

    epochs = ShuffleEpoch()
    train = read("train", config.training.batch_size, shuffle_rows=config.training.shuffle_rows, seed=config.seed,
                 epoch_of=epochs.current)
    valid = read("valid", config.scoring.batch_size) if has_valid else None
    return train, valid, epochs


def split_predictions(model: Any, prepared: PreparedData, name: str,
                      batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A split's labels and the model's predictions, by task, through `predict_arrays`.

    Streamed, the shards are read a block at a time; only the labels and
    predictions (rows x tasks) are collected.
    """
    from mtrec.training.predict import predict_arrays

    if prepared.shards is None:
        split = prepared.splits[name]
        return split.labels, predict_arrays(model, split.features, batch_size)
    from mtrec.preparation.reader import BLOCK_ROWS, iter_prepared_batches

    labels: dict[str, list[np.ndarray]] = {}
    predictions: dict[str, list[np.ndarray]] = {}
    for features, y in iter_prepared_batches(prepared.shards, name, max(BLOCK_ROWS, batch_size)):
        for task, value in predict_arrays(model, features, batch_size).items():
            predictions.setdefault(task, []).append(value)
        for task, value in y.items():
            labels.setdefault(task, []).append(value)
    return ({k: np.concatenate(v) for k, v in labels.items()},
            {k: np.concatenate(v) for k, v in predictions.items()})

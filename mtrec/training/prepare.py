"""From a config to encoded arrays: load the rows, split them, fit the encoder on train, encode."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec.config import ExperimentConfig
from mtrec.data.io import read_table
from mtrec.data.splits import Splits, make_splits
from mtrec.data.synthetic import make_synthetic
from mtrec.errors import DataError
from mtrec.features import FeatureEncoder
from mtrec.tasks import Task, fit_tasks
from mtrec.utils.validation import check_nonfinite, check_unique_columns, require_columns, scan_numbers

SPLIT_NAMES = ("train", "valid", "test")


@dataclasses.dataclass
class EncodedSplit:
    """One split, encoded: model inputs, labels by task, and the raw rows' index."""

    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


@dataclasses.dataclass
class PreparedData:
    """The fitted encoder and the three encoded splits.

    Attributes:
        encoder: the fitted encoder.
        splits: the encoded splits by name. When streamed (`shards` set),
            each holds only its split's first rows, a bounded sample for
            what needs arrays (`mtrec.training.streamed.SampledSplit`;
            `len()` is still the split's row count).
        shards: streamed training's prepared folder (`mtrec prepare`), whose
            shards the splits are read from; None in memory.
    """

    encoder: FeatureEncoder
    splits: dict[str, EncodedSplit]
    shards: Path | None = None


def load_frame(config: ExperimentConfig) -> tuple[pd.DataFrame, str]:
    """Reads the configured rows, or generates them when `data.path` is empty.

    Returns:
        The table and a description of its source, for messages.
    """
    if config.data.path:
        return read_table(config.data.path, na_values=config.data.na_values), str(config.data.path)
    synthetic = config.data.synthetic
    return make_synthetic(**dataclasses.asdict(synthetic)), "the synthetic generator"


def encode_labels(tasks: list[Task], frame: pd.DataFrame, source: str,
                  fit: bool = False) -> dict[str, np.ndarray]:
    """Checks each task's label column and returns float32 arrays with NaN for missing.

    Each task maps its column (`Task.encode`: `positive:`, `classes:`, range
    checks); a task with `sample_weight` gets `(n, 2)` arrays (label, weight),
    the others `(n, 1)`.

    Args:
        tasks: the tasks.
        frame: the rows.
        source: description of `frame` for messages.
        fit: fit the tasks' label state on these rows first (`fit_tasks`:
            standardization, `classes: auto`): True for the training split only.

    Raises:
        SchemaError: a label or weight column is missing or not numeric.
        DataError: a label or weight is out of range or not a declared value.
    """
    labels = {}
    for task in tasks:
        for column in task.columns:
            require_columns(frame, [column], source, note=f" (task '{task.name}')",
                            what="Label column" if column == task.label else "Sample weight column")
    if fit:
        fit_tasks(tasks, frame, source)
    for task in tasks:
        labels[task.name] = task.encode(frame, source)
    for task in tasks:
        parent = getattr(task, "after", None)
        if parent is not None:
            bad = (labels[task.name][:, 0] == 1) & (labels[parent][:, 0] == 0)
            if bad.any():
                parent_label = next(t.label for t in tasks if t.name == parent)
                raise DataError(
                    f"Task '{task.name}' comes after '{parent}', but {int(bad.sum())} rows of {source} "
                    f"have {task.label} = 1 where {parent_label} = 0. In a chain the later label "
                    f"must be 0 wherever the earlier one is 0.")
    return labels


def check_feature_values(columns: list[str], frame: pd.DataFrame, train_frame: pd.DataFrame,
                         source: str, max_nonfinite_fraction: float) -> None:
    """The fit-time checks of the feature columns' values.

    Raises:
        DataError: a feature column is entirely missing in the training
            split, holds numbers beyond float32's range, or more +/-inf than
            `data.max_nonfinite_fraction` (fewer are warned about).
    """
    empty = [c for c in columns if train_frame[c].isna().all()]
    if empty:
        raise DataError(
            f"Feature column(s) {empty} of {source} are entirely missing in the training split "
            f"({len(train_frame):,} rows): nothing can be learned from them. Fix the data or drop them "
            "from features:.")
    check_nonfinite(scan_numbers(frame, columns, source), len(frame), max_nonfinite_fraction, source,
                    what="feature")


def prepare(config: ExperimentConfig, frame: pd.DataFrame | None = None,
            source: str | None = None) -> PreparedData:
    """Splits the rows, fits the encoder on the training split only, and encodes every split.

    Args:
        config: the experiment.
        frame: rows to use instead of `config.data` (e.g. a DataFrame built
            in a notebook).
        source: description of `frame` for messages.
    """
    if frame is None:
        frame, source = load_frame(config)
    source = source or "the input table"
    check_unique_columns(frame.columns, source)
    # Labels are checked on the whole table first: a bad label column or an
    # inconsistent chain fails before any fitting, with whole-table counts.
    label_columns = list(dict.fromkeys(t.label for t in config.tasks))
    # Before the labels are cast to float32: numpy's overflow warning would come before the named error.
    scan_numbers(frame, [c for c in label_columns if c in frame.columns], source)
    encode_labels(config.tasks, frame, source)
    check_nonfinite(scan_numbers(frame, label_columns, source), len(frame), config.data.max_nonfinite_fraction,
                    source, what="label")
    splits: Splits = make_splits(frame, config.data.split)
    train_frame = frame.iloc[splits.train]
    # Labels and ids must never be picked up by a feature glob such as "*".
    # Numbers beyond float32 are named right after the fit (check_feature_values), not by numpy's
    # overflow warning from the statistics.
    with np.errstate(over="ignore"):
        encoder = FeatureEncoder(config.features).fit(
            train_frame, source=f"{source} (train split)",
            exclude=[c for t in config.tasks for c in t.columns] + list(config.data.id_columns))
    check_feature_values(encoder.input_columns, frame, train_frame, source, config.data.max_nonfinite_fraction)
    encoded = {}
    for name in SPLIT_NAMES:
        index = getattr(splits, name)
        part = frame.iloc[index]
        encoded[name] = EncodedSplit(
            features=encoder.transform(part),
            labels=encode_labels(config.tasks, part, f"{source} ({name} split)", fit=name == "train"),
            index=index,
        )
    return PreparedData(encoder=encoder, splits=encoded)


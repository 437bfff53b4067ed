"""Per-group label statistics fit on the training split (out of fold on the training rows).

For a group column (a user, an item) and a label, the smoothed mean

    (sum of the group's labels + smoothing * overall mean) / (group's rows + smoothing)

over training rows only. Validation and test rows get the statistic of the whole
training split; each training row gets it from the other folds only, so its own
label never feeds its feature (otherwise the model would learn to trust a value
that leaks the answer). With no label, the statistic is the group's number of
training rows (no label is read, so no folds are needed).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from mtrec.data.splits import Splits
from mtrec.errors import ConfigError, SchemaError
from mtrec.utils.validation import closest


@dataclasses.dataclass
class TargetStat:
    """One statistic column (config list `target_stats`).

    Args:
        name: the new column.
        group: the column whose values are grouped (e.g. `user_id`).
        label: the label averaged; None for the group's training row count.
        smoothing: weight of the overall mean in the smoothed mean (rows).
        folds: folds for the training rows' out-of-fold values.
        seed: seed of the fold assignment.
    """

    name: str
    group: str
    label: str | None = None
    smoothing: float = 10.0
    folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"target_stats[{self.name}].folds must be >= 2. Received: {self.folds}")
        if self.smoothing < 0:
            raise ConfigError(f"target_stats[{self.name}].smoothing must be >= 0. Received: {self.smoothing}")


def _smoothed_mean(groups: np.ndarray, labels: np.ndarray, num_groups: int, prior: float,
                   smoothing: float) -> np.ndarray:
    present = ~np.isnan(labels)
    sums = np.bincount(groups[present], weights=labels[present], minlength=num_groups)
    counts = np.bincount(groups[present], minlength=num_groups)
    return (sums + smoothing * prior) / (counts + smoothing)


def add_target_stats(frame: pd.DataFrame, splits: Splits, stats: list[TargetStat]) -> pd.DataFrame:
    """Adds each statistic as a float column of `frame` (in place).

    Args:
        frame: every row (all splits).
        splits: which rows train; only their labels are read.
        stats: the statistics.

    Raises:
        SchemaError: a group or label column is missing.
    """
    train = splits.train
    for stat in stats:
        for role, column in (("group", stat.group), ("label", stat.label)):
            if column is not None and column not in frame.columns:
                raise SchemaError(f"target_stats[{stat.name}].{role} '{column}' is not a column of the "
                                  f"table.{closest(column, frame.columns)}")
        codes, uniques = pd.factorize(frame[stat.group])
        codes = np.where(codes < 0, len(uniques), codes)  # a missing group is a group of its own
        num_groups = len(uniques) + 1
        if stat.label is None:
            counts = np.bincount(codes[train], minlength=num_groups).astype("float64")
            frame[stat.name] = counts[codes]
            continue
        labels = pd.to_numeric(frame[stat.label], errors="coerce").to_numpy(dtype="float64")
        prior = float(np.nanmean(labels[train]))
        values = _smoothed_mean(codes[train], labels[train], num_groups, prior, stat.smoothing)[codes]
        fold = np.random.default_rng(stat.seed).integers(0, stat.folds, size=len(train))
        for k in range(stat.folds):
            fit_rows, held_rows = train[fold != k], train[fold == k]
            means = _smoothed_mean(codes[fit_rows], labels[fit_rows], num_groups, prior, stat.smoothing)
            values[held_rows] = means[codes[held_rows]]
        frame[stat.name] = values
    return frame


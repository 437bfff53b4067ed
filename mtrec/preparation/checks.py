"""The value checks of `mtrec train`, summed batch by batch for the streamed preparation.

`mtrec train` checks the whole table at once (`mtrec.training.prepare`):
magnitudes beyond float32's range are refused, +/-inf values are counted per
feature and label column and fail above `data.max_nonfinite_fraction`, and a
feature column entirely missing in the training split is refused. Here the
same checks run on each record batch, with the counts merged across batches
(and across files or Ray blocks), so that a streamed prepare accepts and
refuses what `mtrec train` does, with the same messages
(`mtrec.utils.validation`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from mtrec.errors import DataError
from mtrec.utils.validation import check_nonfinite, scan_numbers


@dataclasses.dataclass
class ValueChecks:
    """Counts behind the checks, for some rows; `merge` adds more rows.

    Args:
        rows: rows seen (every split).
        train_rows: rows of the training split seen.
        feature_nonfinite: +/-inf values per feature column.
        label_nonfinite: +/-inf values per label column.
        train_present: present (non-missing) values per feature column in the training split.
    """

    rows: int = 0
    train_rows: int = 0
    feature_nonfinite: Counter = dataclasses.field(default_factory=Counter)
    label_nonfinite: Counter = dataclasses.field(default_factory=Counter)
    train_present: Counter = dataclasses.field(default_factory=Counter)

    def update(self, batch: pd.DataFrame, train: np.ndarray, features: list[str], labels: list[str],
               source: str) -> None:
        """Checks one batch's magnitudes and adds its counts.

        Args:
            batch: the rows.
            train: boolean mask of the batch's training rows.
            features: the feature columns (raw input columns).
            labels: the label columns.
            source: the file, for messages.

        Raises:
            DataError: a feature or label holds numbers beyond float32's range (named with the file).
        """
        label_nonfinite = scan_numbers(batch, labels, source)
        self.feature_nonfinite.update(scan_numbers(batch, features, source))
        self.label_nonfinite.update(label_nonfinite)
        self.rows += len(batch)
        self.train_rows += int(train.sum())
        present = batch[features].notna().to_numpy()
        self.train_present.update(dict(zip(features, present[train].sum(axis=0).tolist())))

    def merge(self, other: ValueChecks) -> ValueChecks:
        """Adds `other`'s counts to these and returns self."""
        self.rows += other.rows
        self.train_rows += other.train_rows
        self.feature_nonfinite.update(other.feature_nonfinite)
        self.label_nonfinite.update(other.label_nonfinite)
        self.train_present.update(other.train_present)
        return self

    def finish(self, features: list[str], max_nonfinite_fraction: float, source: Any) -> None:
        """The whole-table checks, once every batch is counted.

        Raises:
            DataError: a label or feature column's +/-inf share is above
                `max_nonfinite_fraction` (fewer are warned about), or a
                feature column is entirely missing in the training split.
        """
        check_nonfinite(dict(self.label_nonfinite), self.rows, max_nonfinite_fraction, source, what="label")
        empty = [c for c in features if not self.train_present[c]]
        if empty:
            raise DataError(
                f"Feature column(s) {empty} of {source} are entirely missing in the training split "
                f"({self.train_rows:,} rows): nothing can be learned from them. Fix the data or drop them "
                "from features:.")
        check_nonfinite(dict(self.feature_nonfinite), self.rows, max_nonfinite_fraction, source,
                        what="feature")


__all__ = ["ValueChecks"]

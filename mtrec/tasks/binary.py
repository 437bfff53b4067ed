"""BinaryTask: a 0/1 label, a sigmoid head, log loss, AUC."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
import numpy as np
import pandas as pd

from mtrec.errors import ConfigError, DataError
from mtrec.tasks.base import Task
from mtrec.tasks.masking import MaskedLoss, MaskedMetric


@dataclasses.dataclass
class BinaryTask(Task):
    """A binary task (click, purchase, readmitted).

    Args:
        name, label, weight: see `Task`.
        after: str or None. Name of a binary task that must happen first
            (purchase after click): an ESMM-style chain (Ma et al., SIGIR
            2018). The tower then models p(this | after) and the model's
            output is the joint p(after) x p(this | after), trained over the
            entire space on this task's label, which must be 0 wherever the
            earlier task's label is 0. Defaults to None.
        positive: a value or a list of values of the label column that mean 1
            (`positive: ["Yes"]`); every other present value means 0, unless
            `negative` is given. Values match as written or as text, case
            aside (`1` matches `"1"`; YAML's `yes`/`true` match "Yes"/"True").
            Defaults to None: the column must hold 0/1 (or true/false).
        negative: a value or a list of values that mean 0 (with `positive`).
            A present value that is neither positive nor negative is then a
            DataError naming it. Defaults to None.

    The head outputs a probability. Metrics: `auc`, `logloss`.
    """

    after: str | None = None
    positive: Any = None
    negative: Any = None

    kind: ClassVar[str] = "binary"
    monitor: ClassVar[tuple[str, str]] = ("auc", "max")

    @property
    def output_activation(self) -> str:
        return "sigmoid"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.negative is not None and self.positive is None:
            raise ConfigError(f"Task '{self.name}': negative needs positive (the values that mean 1).")
        for key in ("positive", "negative"):
            value = getattr(self, key)
            if isinstance(value, (list, tuple)) and not value:
                raise ConfigError(f"Task '{self.name}': {key} must name at least one value. Received: []")
            if isinstance(value, (dict, set)):
                raise ConfigError(f"Task '{self.name}': {key} must be a value or a list. Received: {value!r}")
        overlap = _keys(self.positive) & _keys(self.negative)
        if overlap:
            raise ConfigError(f"Task '{self.name}': {sorted(overlap)} is both positive and negative.")

    def make_loss(self) -> MaskedLoss:
        return MaskedLoss("binary_crossentropy", name=f"{self.name}_loss", weighted=bool(self.sample_weight))

    def make_metrics(self) -> list:
        weighted = bool(self.sample_weight)
        return [
            MaskedMetric(keras.metrics.AUC(name="auc", num_thresholds=1000), weighted=weighted),
            MaskedMetric(keras.metrics.BinaryCrossentropy(name="logloss"), weighted=weighted),
        ]

    def prepare_labels(self, values: pd.Series, source: str = "data") -> np.ndarray:
        """Maps `positive` (and `negative`) values to 1 and 0; without them, checks a 0/1 column.

        Raises:
            DataError: a value is neither positive nor negative, or no value
                of the column is positive (a misspelt `positive` would make
                every row 0).
        """
        if self.positive is None:
            return super().prepare_labels(values, source)
        present = values.notna().to_numpy()
        keys = np.array([_key(v) for v in values.to_numpy()], dtype=object)
        positive = np.isin(keys, list(_keys(self.positive))) & present
        out = np.where(positive, 1.0, 0.0)
        if self.negative is not None:
            negative = np.isin(keys, list(_keys(self.negative))) & present
            bad = present & ~positive & ~negative
            if bad.any():
                examples = pd.unique(values[bad])[:5].tolist()
                raise DataError(
                    f"Label column '{self.label}' of binary task '{self.name}' in {source} has "
                    f"{int(bad.sum())} rows that are neither positive {_as_list(self.positive)} nor negative "
                    f"{_as_list(self.negative)}, e.g. {examples}. Add them to positive: or negative:, or "
                    f"make them missing (data.na_values).")
        elif present.any() and not positive.any():
            examples = pd.unique(values[present])[:5].tolist()
            raise DataError(
                f"Label column '{self.label}' of binary task '{self.name}' in {source} has no row equal to "
                f"positive {_as_list(self.positive)}; its values are e.g. {examples}. Check the spelling "
                f"(and quote values such as 'Yes' in YAML).")
        out[~present] = np.nan
        return out.astype("float32").reshape(-1, 1)

    def _check_values(self, labels: np.ndarray, source: str) -> None:
        present = ~np.isnan(labels)
        bad = present & (labels != 0) & (labels != 1)
        if bad.any():
            raise self._bad_values(labels, bad, "0 or 1", source)


_TRUE_WORDS = ("1", "1.0", "true", "yes", "y", "on")
_FALSE_WORDS = ("0", "0.0", "false", "no", "n", "off")


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _key(value: Any) -> str:
    """A value as compared with `positive`/`negative`: its text, lowercased (1, 1.0 and "1" alike)."""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip().lower()


def _keys(value: Any) -> set[str]:
    """The comparison keys of a `positive`/`negative` setting; YAML's yes/true (no/false) take their words along."""
    if value is None:
        return set()
    keys = set()
    for item in _as_list(value):
        key = _key(item)
        keys.add(key)
        if isinstance(item, bool):  # YAML reads an unquoted Yes as true
            keys.update(_TRUE_WORDS if item else _FALSE_WORDS)
    return keys

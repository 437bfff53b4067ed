"""MulticlassTask: a class label, a softmax head, cross-entropy, accuracy."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import keras
import numpy as np
import pandas as pd

from mtrec.errors import ConfigError, DataError
from mtrec.tasks.base import Task
from mtrec.tasks.masking import MaskedLoss, MaskedMetric


@dataclasses.dataclass
class MulticlassTask(Task):
    """A multiclass task.

    Args:
        name, label, weight: see `Task`.
        num_classes: int. Number of classes (>= 2). Required without
            `classes`; with it, taken from its length.
        classes: the label values, in order (`[1, 2, 3, 4, 5]`,
            `["low", "mid", "high"]`), or `"auto"`: the sorted distinct values
            of the training split's labels (replaced by that list when the
            task is fit, so the saved model carries it). A value outside the
            list is a DataError naming it. Defaults to None: the label is a
            class index in `[0, num_classes)`.

    Metrics: `accuracy`, `crossentropy`. Scoring writes the most likely class
    as `<name>` (a value of `classes` when given, else its index) and the
    class probabilities, in class order, as the list column `<name>_proba`.
    """

    num_classes: int = 0
    classes: list[Any] | Literal["auto"] | None = None

    kind: ClassVar[str] = "multiclass"
    monitor: ClassVar[tuple[str, str]] = ("accuracy", "max")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.classes, (list, tuple)):
            self.classes = list(self.classes)
            keys = [_key(c) for c in self.classes]
            if len(set(keys)) != len(keys):
                raise ConfigError(f"Task '{self.name}': classes lists a value twice: {self.classes}")
            if len(self.classes) < 2:
                raise ConfigError(f"Task '{self.name}': classes must list at least 2 values. "
                                  f"Received: {self.classes}")
            if self.num_classes and self.num_classes != len(self.classes):
                raise ConfigError(
                    f"Task '{self.name}': num_classes={self.num_classes} but classes lists "
                    f"{len(self.classes)} values; give one of them.")
            self.num_classes = len(self.classes)
        elif self.classes is None and self.num_classes < 2:
            raise ConfigError(
                f"Task '{self.name}': num_classes must be an integer >= 2 (or give classes: a list, or "
                f"auto). Received: {self.num_classes}")

    @property
    def output_units(self) -> int:
        if self.classes == "auto":
            raise ConfigError(
                f"Task '{self.name}': classes: auto is fit on the training labels (mtrec train); "
                "this model is built before that. List the classes.")
        return self.num_classes

    @property
    def output_activation(self) -> str:
        return "softmax"

    def make_loss(self) -> MaskedLoss:
        return MaskedLoss("sparse_categorical_crossentropy", name=f"{self.name}_loss",
                          weighted=bool(self.sample_weight))

    def make_metrics(self) -> list:
        weighted = bool(self.sample_weight)
        return [
            MaskedMetric(keras.metrics.SparseCategoricalAccuracy(name="accuracy"), weighted=weighted),
            MaskedMetric(keras.metrics.SparseCategoricalCrossentropy(name="crossentropy"), weighted=weighted),
        ]

    def fit(self, values: pd.Series, source: str = "data", weights: np.ndarray | None = None) -> None:
        """`classes: auto` becomes the sorted distinct values of the training labels.

        Raises:
            DataError: fewer than 2 distinct values.
        """
        if self.classes != "auto":
            return
        classes = _sorted_values(values)
        if len(classes) < 2:
            raise DataError(
                f"Label column '{self.label}' of multiclass task '{self.name}' in {source} holds "
                f"{len(classes)} distinct value(s) {classes}: classes: auto needs at least 2.")
        self.classes = classes
        self.num_classes = len(classes)

    @staticmethod
    def distinct_labels(values: pd.Series) -> list[Any]:
        """The distinct present values of (a chunk of) a label column, sorted: what `classes: auto` is fit on.

        A streamed fit collects them per chunk of the training rows and fits on their union
        (`fit(pd.Series(union))` gives the classes a fit on the whole column gives).
        """
        return _sorted_values(values)

    def prepare_labels(self, values: pd.Series, source: str = "data") -> np.ndarray:
        """Class indices as float32 `(n, 1)`, NaN where missing.

        Raises:
            DataError: a value is not one of `classes` (or not an index in
                `[0, num_classes)` without them).
        """
        if self.classes is None:
            return super().prepare_labels(values, source)
        # Before `fit` (the whole table's first check), auto maps the column's own values.
        classes = _sorted_values(values) if self.classes == "auto" else self.classes
        index = {_key(c): i for i, c in enumerate(classes)}
        present = values.notna().to_numpy()
        codes = np.array([index.get(_key(v), -1) if p else -1 for v, p in zip(values.to_numpy(), present)],
                         dtype="float64")
        bad = present & (codes < 0)
        if bad.any():
            examples = pd.unique(values[bad])[:5].tolist()
            raise DataError(
                f"Label column '{self.label}' of multiclass task '{self.name}' in {source} has "
                f"{int(bad.sum())} rows whose value is not one of classes {classes}, e.g. {examples}.")
        codes[~present] = np.nan
        return codes.astype("float32").reshape(-1, 1)

    def _check_values(self, labels: np.ndarray, source: str) -> None:
        present = ~np.isnan(labels)
        bad = present & ((labels != np.round(labels)) | (labels < 0) | (labels >= self.num_classes))
        if bad.any():
            raise self._bad_values(labels, bad, f"integers in [0, {self.num_classes}) (or give classes:)",
                                   source)

    def output_columns(self, predictions: np.ndarray) -> dict[str, np.ndarray]:
        probabilities = np.asarray(predictions, dtype="float32")
        best = probabilities.argmax(axis=1).astype("int32")
        if isinstance(self.classes, list):
            best = class_array(self.classes)[best]
        return {self.name: best, f"{self.name}_proba": list(probabilities)}


def class_array(classes: list[Any]) -> np.ndarray:
    """The class values as a typed array: int64 when all are integers, float64 for numbers, else text."""
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes):
        return np.asarray(classes, dtype="int64")
    if all(isinstance(c, (int, float, np.number)) and not isinstance(c, bool) for c in classes):
        return np.asarray(classes, dtype="float64")
    return np.asarray([str(c) for c in classes], dtype=str)


def _key(value: Any) -> Any:
    """A value as matched against `classes`: numbers by value (1 == 1.0), anything else by its text."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    return str(value)


def _sorted_values(values: pd.Series) -> list[Any]:
    """The distinct present values, sorted, as plain Python values (integral floats as ints)."""
    unique = pd.unique(values.dropna())
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = sorted(float(v) for v in unique)
        if all(v.is_integer() for v in numbers):
            return [int(v) for v in numbers]
        return numbers
    return sorted(str(v) for v in unique)

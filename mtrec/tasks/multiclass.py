"""MulticlassTask: a class index label, a softmax head, cross-entropy, accuracy."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras
import numpy as np

from mtrec.errors import ConfigError
from mtrec.tasks.base import Task
from mtrec.tasks.masking import MaskedLoss, MaskedMetric


@dataclasses.dataclass
class MulticlassTask(Task):
    """A multiclass task whose label is a class index in `[0, num_classes)`.

    Args:
        name, label, weight: see `Task`.
        num_classes: int. Number of classes (>= 2). Required.

    Metrics: `accuracy`, `crossentropy`. Scoring writes the most likely class
    as `<name>` and the class probabilities as the list column `<name>_proba`.
    """

    num_classes: int = 0

    kind: ClassVar[str] = "multiclass"
    monitor: ClassVar[tuple[str, str]] = ("accuracy", "max")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 2:
            raise ConfigError(
                f"Task '{self.name}': num_classes must be an integer >= 2. Received: {self.num_classes}")

    @property
    def output_units(self) -> int:
        return self.num_classes

    @property
    def output_activation(self) -> str:
        return "softmax"

    def make_loss(self) -> MaskedLoss:
        return MaskedLoss("sparse_categorical_crossentropy", name=f"{self.name}_loss")

    def make_metrics(self) -> list:
        return [
            MaskedMetric(keras.metrics.SparseCategoricalAccuracy(name="accuracy")),
            MaskedMetric(keras.metrics.SparseCategoricalCrossentropy(name="crossentropy")),
        ]

    def _check_values(self, labels: np.ndarray, source: str) -> None:
        present = ~np.isnan(labels)
        bad = present & ((labels != np.round(labels)) | (labels < 0) | (labels >= self.num_classes))
        if bad.any():
            raise self._bad_values(labels, bad, f"integers in [0, {self.num_classes})", source)

    def output_columns(self, predictions: np.ndarray) -> dict[str, np.ndarray]:
        probabilities = np.asarray(predictions, dtype="float32")
        return {self.name: probabilities.argmax(axis=1).astype("int32"),
                f"{self.name}_proba": list(probabilities)}

"""BinaryTask: a 0/1 label, a sigmoid head, log loss, AUC."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import keras
import numpy as np

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

    The head outputs a probability. Metrics: `auc`, `logloss`.
    """

    after: str | None = None

    kind: ClassVar[str] = "binary"
    monitor: ClassVar[tuple[str, str]] = ("auc", "max")

    @property
    def output_activation(self) -> str:
        return "sigmoid"

    def make_loss(self) -> MaskedLoss:
        return MaskedLoss("binary_crossentropy", name=f"{self.name}_loss")

    def make_metrics(self) -> list:
        return [
            MaskedMetric(keras.metrics.AUC(name="auc", num_thresholds=1000)),
            MaskedMetric(keras.metrics.BinaryCrossentropy(name="logloss")),
        ]

    def _check_values(self, labels: np.ndarray, source: str) -> None:
        present = ~np.isnan(labels)
        bad = present & (labels != 0) & (labels != 1)
        if bad.any():
            raise self._bad_values(labels, bad, "0 or 1", source)

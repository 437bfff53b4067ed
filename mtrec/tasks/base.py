"""Task: owns a label column, its prediction head, its masked loss and its metrics."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mtrec.errors import ConfigError, DataError, SchemaError


@dataclasses.dataclass
class Task:
    """Base of every task kind. Config keys are the dataclass fields.

    Args:
        name: str. The task's name: the model output and metric prefix.
        label: str. The label column. Defaults to `name`.
        weight: float. Static weight of the task's loss. Defaults to `1.0`.
        auxiliary: bool. An auxiliary ("hint") task is trained, so it shapes
            the shared layers, but it is left out of scoring output and of
            model selection (early stopping on `val_loss` then watches
            `val_main_loss`, the weighted loss of the other tasks).
            Defaults to `False`.
    """

    name: str
    label: str | None = None
    weight: float = 1.0
    auxiliary: bool = False

    kind: ClassVar[str] = ""
    #: Metric (without the task prefix) early stopping watches by default, and its mode.
    monitor: ClassVar[tuple[str, str]] = ("loss", "min")

    def __post_init__(self) -> None:
        if not self.name or not str(self.name).isidentifier():
            raise ConfigError(
                f"Task name must be a non-empty identifier (letters, digits, '_'). Received: {self.name!r}")
        if self.label is None:
            self.label = self.name
        if self.weight < 0:
            raise ConfigError(f"Task '{self.name}': weight must be >= 0. Received: weight={self.weight}")

    # -- head ---------------------------------------------------------------
    @property
    def output_units(self) -> int:
        """Width of the head's output."""
        return 1

    @property
    def output_activation(self) -> str | None:
        """Activation of the head's output layer."""
        return None

    # -- training -----------------------------------------------------------
    def make_loss(self):
        """Returns the task's masked Keras loss."""
        raise NotImplementedError

    def make_metrics(self) -> list:
        """Returns the task's masked Keras metrics (fresh instances)."""
        raise NotImplementedError

    # -- labels -------------------------------------------------------------
    def prepare_labels(self, values: pd.Series, source: str = "data") -> np.ndarray:
        """Checks a label column and returns it as float32 `(n, 1)`, NaN where missing.

        Raises:
            SchemaError: the column has a non-numeric type.
            DataError: a value is outside the task's range.
        """
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            raise SchemaError(
                f"Label column '{self.label}' of {self.kind} task '{self.name}' in {source} must be "
                f"numeric; it has dtype {values.dtype} (e.g. {values.dropna().head(3).tolist()}).")
        array = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
        array[~np.isfinite(array)] = np.nan
        self._check_values(array, source)
        return array.astype("float32").reshape(-1, 1)

    def _check_values(self, labels: np.ndarray, source: str) -> None:
        """Hook for range checks on present labels."""

    # -- scoring ------------------------------------------------------------
    def output_columns(self, predictions: np.ndarray) -> dict[str, np.ndarray]:
        """Turns the head's output into the scoring table's column(s)."""
        return {self.name: np.asarray(predictions, dtype="float32").reshape(-1)}

    def get_config(self) -> dict[str, Any]:
        """Returns the task's config, `kind` included."""
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def _bad_values(self, labels: np.ndarray, bad: np.ndarray, rule: str, source: str) -> DataError:
        examples = np.unique(labels[bad])[:5].tolist()
        return DataError(
            f"Label column '{self.label}' of {self.kind} task '{self.name}' in {source} must hold "
            f"{rule} (or be missing); {int(bad.sum())} rows do not, e.g. {examples}.")

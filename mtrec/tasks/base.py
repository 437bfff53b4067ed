"""Task: owns a label column, its prediction head, its masked loss and its metrics."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mtrec.errors import ConfigError, DataError, SchemaError
from mtrec.features.partial import Moments
from mtrec.types import Tensor


@dataclasses.dataclass
class Task:
    """Base of every task kind. Config keys are the dataclass fields.

    Args:
        name: str. The task's name: the model output, the scoring column and
            the metric prefix (`val_<name>_auc`), so an identifier (letters,
            digits, `_`). A column whose name is not one is read through
            `label:` (`name: recommended, label: "Recommended IND"`).
        label: str. The label column, any column name. Defaults to `name`.
        weight: float. Static weight of the task's loss. Defaults to `1.0`.
        auxiliary: bool. An auxiliary ("hint") task is trained, so it shapes
            the shared layers, but it is left out of scoring output and of
            model selection (early stopping on `val_loss` then watches
            `val_main_loss`, the weighted loss of the other tasks).
            Defaults to `False`.
        sample_weight: str or None. A column of per-row weights (finite,
            >= 0) for this task's loss and metrics. Rows whose label is
            missing still contribute nothing; a row with a label needs a
            weight. Every weighting strategy applies on top of them. Defaults
            to None (every labelled row weighs 1).
    """

    name: str
    label: str | None = None
    weight: float = 1.0
    auxiliary: bool = False
    sample_weight: str | None = None

    kind: ClassVar[str] = ""
    #: Metric (without the task prefix) early stopping watches by default, and its mode.
    monitor: ClassVar[tuple[str, str]] = ("loss", "min")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            suggestion = re.sub(r"\W+", "_", str(self.name)).strip("_").lower() or "task"
            if suggestion[0].isdigit():
                suggestion = f"task_{suggestion}"
            raise ConfigError(
                f"Task name {self.name!r} is not an identifier (letters, digits, '_'): it names the model "
                f"output and the metrics (val_<name>_loss). To read a column of that name, give the task "
                f"another name and the column as its label, e.g. `name: {suggestion}` with "
                f"`label: {self.name!r}`.")
        if self.label is None:
            self.label = self.name
        if self.sample_weight is not None and self.sample_weight == self.label:
            raise ConfigError(f"Task '{self.name}': sample_weight '{self.sample_weight}' is its label column.")
        if self.weight < 0:
            raise ConfigError(f"Task '{self.name}': weight must be >= 0. Received: weight={self.weight}")

    @property
    def columns(self) -> list[str]:
        """The table columns this task reads: its label and its sample weight column."""
        return [self.label, *([self.sample_weight] if self.sample_weight else [])]

    # -- head ---------------------------------------------------------------
    def finish_output(self, outputs: Tensor) -> Tensor:
        """Maps the tower's output to the model's prediction (keras.ops; constants from the task's config).

        The identity here; a standardized regression task rescales to its
        label's units, so scoring and export need no step of their own.
        """
        return outputs

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
    def fit(self, values: pd.Series, source: str = "data", weights: np.ndarray | None = None) -> None:
        """Fits the task's label state (standardization, classes) on the training split's label column.

        The state is kept in the task's config, which the model saves, so a
        reloaded model predicts exactly as trained. Nothing to fit here.

        Args:
            values: the training split's label column.
            source: description of the rows for messages.
            weights: the rows' sample weights (`sample_weight`), or None.
        """

    def label_moments(self, labels: np.ndarray, weights: np.ndarray | None = None) -> Moments:
        """The moments of checked labels (`prepare_labels`'s output) that `fit_moments` reads.

        Mergeable (`Moments.merge`, the numeric features' moments, weighted here by the sample
        weights): a fit streamed over chunks of the training labels computes these per chunk and
        merges them, instead of holding the column.

        Args:
            labels: checked labels, NaN where missing.
            weights: their sample weights, or None.
        """
        return Moments.of(*present_labels(labels, weights))

    def fit_moments(self, moments: Moments, source: str = "data") -> None:
        """Fits the task's label state from the training labels' moments (`label_moments`, merged).

        `fit` is this on the whole column. Nothing to fit here.
        """

    def encode(self, frame: pd.DataFrame, source: str = "data") -> np.ndarray:
        """The task's label array from a table: `prepare_labels`, with the weight column beside it.

        Returns:
            float32 `(n, 1)`, or `(n, 2)` (label, weight) with
            `sample_weight`; a row without a label has weight 0.

        Raises:
            DataError: a labelled row's weight is missing, negative or not finite.
            SchemaError: the weight column is missing or not numeric.
        """
        labels = self.prepare_labels(frame[self.label], source)
        if not self.sample_weight:
            return labels
        column = self.sample_weight
        if column not in frame.columns:
            raise SchemaError(
                f"Sample weight column '{column}' of task '{self.name}' is missing from {source}. "
                f"Columns present: {list(frame.columns)}")
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise SchemaError(
                f"Sample weight column '{column}' of task '{self.name}' in {source} must be numeric; "
                f"it has dtype {values.dtype} (e.g. {values.dropna().head(3).tolist()}).")
        weights = values.to_numpy(dtype="float64", na_value=np.nan)
        labelled = ~np.isnan(labels[:, 0])
        bad = labelled & ~(np.isfinite(weights) & (weights >= 0))
        if bad.any():
            examples = pd.unique(weights[bad])[:5].tolist()
            raise DataError(
                f"Sample weight column '{column}' of task '{self.name}' in {source} must hold a finite "
                f"weight >= 0 on every row with a label; {int(bad.sum())} rows do not, e.g. {examples}.")
        weights = np.where(labelled, weights, 0.0).astype("float32").reshape(-1, 1)
        return np.concatenate([labels, weights], axis=1)

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


def present_labels(labels: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The present labels as float64 `(m,)`, with their weights."""
    labels = np.asarray(labels).ravel().astype("float64")
    keep = ~np.isnan(labels)
    return labels[keep], (None if weights is None else np.asarray(weights, dtype="float64").ravel()[keep])

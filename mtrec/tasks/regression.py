"""RegressionTask: a real-valued label, a linear head, MSE or Huber loss, RMSE and MAE.

By default the head learns the label standardized with the training split's
mean and sd: the model's output is `z * sd + mean` (in keras.ops, with the two
numbers in the task's config, which the saved model carries), and the loss is
taken on the standardized scale (divided by sd²), so tasks of very different
scales weigh alike in `val_loss` and early stopping. Predictions, metrics and
scores are in the label's own units.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import keras
import numpy as np
import pandas as pd
from keras import ops

from mtrec.errors import ConfigError, DataError
from mtrec.features.partial import Moments
from mtrec.tasks.base import Task, present_labels
from mtrec.tasks.masking import MaskedLoss, MaskedMetric
from mtrec.types import Tensor


@dataclasses.dataclass
class RegressionTask(Task):
    """A regression task (rating, spend, volatility).

    Args:
        name, label, weight, sample_weight: see `Task`.
        loss: `"mse"` or `"huber"`. Defaults to `"mse"`.
        huber_delta: float. Delta of the Huber loss, on the scale the loss is
            taken (standardized by default). Defaults to `1.0`.
        standardize: bool. Learn the label standardized by its training mean
            and sd (after `transform`); the output is rescaled to the label's
            units. Defaults to `True`; `false` learns the raw label.
        transform: `"none"` or `"log1p"`: the head learns `log1p(label)`
            (labels must be > -1) and the output is `expm1` of it, so
            predictions and metrics stay in the label's units. Defaults to
            `"none"`.
        output_range: `[lo, hi]` or None. Bounds the output:
            `lo + (hi - lo) * sigmoid(z)` (e.g. ratings `[1, 5]`). Labels
            outside it are a DataError. Not with `transform: log1p`.
            Defaults to None.
        mean, sd: floats fit on the training split (`fit`) when `standardize`
            is on: the state the saved model carries. Leave them unset.

    Metrics: `rmse`, `mae` (in the label's units).
    """

    loss: Literal["mse", "huber"] = "mse"
    huber_delta: float = 1.0
    standardize: bool = True
    transform: Literal["none", "log1p"] = "none"
    output_range: list[float] | None = None
    mean: float | None = None
    sd: float | None = None

    kind: ClassVar[str] = "regression"
    monitor: ClassVar[tuple[str, str]] = ("rmse", "min")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.huber_delta <= 0:
            raise ConfigError(f"Task '{self.name}': huber_delta must be > 0. Received: {self.huber_delta}")
        if self.output_range is not None:
            self.output_range = [float(v) for v in self.output_range]
            if len(self.output_range) != 2 or not self.output_range[0] < self.output_range[1]:
                raise ConfigError(
                    f"Task '{self.name}': output_range must be [lo, hi] with lo < hi. "
                    f"Received: {self.output_range}")
            if self.transform != "none":
                raise ConfigError(f"Task '{self.name}': output_range cannot be combined with "
                                  f"transform: {self.transform}.")
        if self.sd is not None and not self.sd > 0:
            raise ConfigError(f"Task '{self.name}': sd must be > 0. Received: {self.sd}")

    # -- fitted scale -----------------------------------------------------------
    @property
    def scale(self) -> float:
        """The sd the loss divides by (1 until fit, or with `standardize: false`)."""
        return float(self.sd) if self.standardize and self.sd else 1.0

    @property
    def center(self) -> float:
        return float(self.mean) if self.standardize and self.mean is not None else 0.0

    def fit(self, values: pd.Series, source: str = "data", weights: np.ndarray | None = None) -> None:
        """Fits the training mean and sd of the (transformed) label, weighted by `weights` when given."""
        if not self.standardize:
            self.mean = self.sd = None
            return
        self.fit_moments(self.label_moments(self.prepare_labels(values, source), weights), source)

    def label_moments(self, labels: np.ndarray, weights: np.ndarray | None = None) -> Moments:
        """The moments of the transformed present labels (`transform`), which the standardization reads."""
        labels, weights = present_labels(labels, weights)
        return Moments.of(self._transform(labels), weights)

    def fit_moments(self, moments: Moments, source: str = "data") -> None:
        """The training mean and sd of the (transformed) label from its moments."""
        if not self.standardize:
            self.mean = self.sd = None
            return
        if moments.count <= 0:
            raise DataError(f"Label column '{self.label}' of regression task '{self.name}' in {source} has "
                            "no (weighted) value in the training split: nothing to standardize with.")
        self.mean = float(moments.mean)
        sd = moments.std
        # A constant label: keep the raw scale rather than divide by 0.
        self.sd = sd if sd > 1e-12 else 1.0

    def _transform(self, labels: np.ndarray) -> np.ndarray:
        return np.log1p(labels) if self.transform == "log1p" else labels

    # -- head ---------------------------------------------------------------------
    def finish_output(self, outputs: Tensor) -> Tensor:
        if self.output_range is not None:
            lo, hi = self.output_range
            return lo + (hi - lo) * ops.sigmoid(ops.cast(outputs, "float32"))
        if self.center == 0.0 and self.scale == 1.0 and self.transform == "none":
            return outputs
        values = ops.cast(outputs, "float32") * self.scale + self.center
        return ops.expm1(values) if self.transform == "log1p" else values

    def make_loss(self) -> MaskedLoss:
        return MaskedLoss(self.loss, huber_delta=self.huber_delta, name=f"{self.name}_loss",
                          scale=self.scale, transform=self.transform, weighted=bool(self.sample_weight))

    def make_metrics(self) -> list:
        weighted = bool(self.sample_weight)
        return [
            MaskedMetric(keras.metrics.RootMeanSquaredError(name="rmse"), weighted=weighted),
            MaskedMetric(keras.metrics.MeanAbsoluteError(name="mae"), weighted=weighted),
        ]

    def _check_values(self, labels: np.ndarray, source: str) -> None:
        present = ~np.isnan(labels)
        if self.transform == "log1p":
            bad = present & (labels <= -1)
            if bad.any():
                raise self._bad_values(labels, bad, "values > -1 (transform: log1p)", source)
        if self.output_range is not None:
            lo, hi = self.output_range
            bad = present & ((labels < lo) | (labels > hi))
            if bad.any():
                raise self._bad_values(labels, bad, f"values in output_range [{lo:g}, {hi:g}]", source)


@dataclasses.dataclass
class CountTask(Task):
    """A count task (visits, helpful votes, items bought): Poisson loss, log link.

    Args:
        name, label, weight, sample_weight: see `Task`.

        offset: float or None. The log of the training split's mean count, fit
            (`fit`) so the head starts at the mean rate: the state the saved
            model carries. Leave it unset.

    The head outputs the log of the rate (less `offset`); the model's output
    is the rate (`exp`), so predictions and metrics are counts. Labels must be
    >= 0 (non-integers are allowed, as for Poisson regression on rates).
    Metrics: `poisson` (Keras's Poisson loss, in training logs), `rmse`,
    `mae`; reports add `poisson_deviance` and `r2`.
    """

    offset: float | None = None

    kind: ClassVar[str] = "count"
    monitor: ClassVar[tuple[str, str]] = ("loss", "min")

    def fit(self, values: pd.Series, source: str = "data", weights: np.ndarray | None = None) -> None:
        """Fits `offset`, the log of the training (weighted) mean count (floored at 1e-6: an all-zero split)."""
        self.fit_moments(self.label_moments(self.prepare_labels(values, source), weights), source)

    def fit_moments(self, moments: Moments, source: str = "data") -> None:
        """`offset` from the training counts' moments: the log of their (weighted) mean."""
        mean = float(moments.mean) if moments.count > 0 else 1.0
        self.offset = float(np.log(max(mean, 1e-6)))

    def finish_output(self, outputs: Tensor) -> Tensor:
        # exp of the log-rate; capped at e^40 so a wild early step cannot overflow to inf.
        log_rate = ops.cast(outputs, "float32") + float(self.offset or 0.0)
        return ops.exp(ops.minimum(log_rate, 40.0))

    def make_loss(self) -> MaskedLoss:
        return MaskedLoss("poisson", name=f"{self.name}_loss", weighted=bool(self.sample_weight))

    def make_metrics(self) -> list:
        weighted = bool(self.sample_weight)
        return [
            MaskedMetric(keras.metrics.Poisson(name="poisson"), weighted=weighted),
            MaskedMetric(keras.metrics.RootMeanSquaredError(name="rmse"), weighted=weighted),
            MaskedMetric(keras.metrics.MeanAbsoluteError(name="mae"), weighted=weighted),
        ]

    def _check_values(self, labels: np.ndarray, source: str) -> None:
        present = ~np.isnan(labels)
        bad = present & (labels < 0)
        if bad.any():
            raise self._bad_values(labels, bad, "counts >= 0", source)

"""RegressionTask: a real-valued label, a linear head, MSE or Huber loss, RMSE and MAE."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import keras

from mtrec.errors import ConfigError
from mtrec.tasks.base import Task
from mtrec.tasks.masking import MaskedLoss, MaskedMetric


@dataclasses.dataclass
class RegressionTask(Task):
    """A regression task (rating, spend, volatility).

    Args:
        name, label, weight: see `Task`.
        loss: `"mse"` or `"huber"`. Defaults to `"mse"`.
        huber_delta: float. Delta of the Huber loss. Defaults to `1.0`.

    Metrics: `rmse`, `mae`.
    """

    loss: Literal["mse", "huber"] = "mse"
    huber_delta: float = 1.0

    kind: ClassVar[str] = "regression"
    monitor: ClassVar[tuple[str, str]] = ("rmse", "min")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.huber_delta <= 0:
            raise ConfigError(f"Task '{self.name}': huber_delta must be > 0. Received: {self.huber_delta}")

    def make_loss(self) -> MaskedLoss:
        return MaskedLoss(self.loss, huber_delta=self.huber_delta, name=f"{self.name}_loss")

    def make_metrics(self) -> list:
        return [
            MaskedMetric(keras.metrics.RootMeanSquaredError(name="rmse")),
            MaskedMetric(keras.metrics.MeanAbsoluteError(name="mae")),
        ]

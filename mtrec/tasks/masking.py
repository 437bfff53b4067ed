"""Label masking: a missing label (NaN) drops that example from its task's loss and metrics only."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mtrec.types import Tensor
from mtrec.utils.keras_utils import serializable

_PER_EXAMPLE_LOSSES = {
    "binary_crossentropy": lambda y, p, delta: keras.losses.binary_crossentropy(y, p),
    "mse": lambda y, p, delta: keras.losses.mean_squared_error(y, p),
    "huber": lambda y, p, delta: keras.losses.huber(y, p, delta=delta),
    "sparse_categorical_crossentropy":
        lambda y, p, delta: keras.losses.sparse_categorical_crossentropy(ops.cast(y, "int32"), p),
}


def label_mask(y_true: Tensor) -> tuple[Tensor, Tensor]:
    """Splits labels into (labels with NaN replaced by 0, float mask of shape (batch,))."""
    y_true = ops.cast(y_true, "float32")
    present = ops.logical_not(ops.isnan(y_true))
    safe = ops.where(present, y_true, ops.zeros_like(y_true))
    if len(present.shape) > 1:
        present = ops.all(present, axis=tuple(range(1, len(present.shape))))
    return safe, ops.cast(present, "float32")


@serializable
class MaskedLoss(keras.losses.Loss):
    """Mean of a per-example loss over the examples whose label is present.

    Args:
        loss: str. One of `"binary_crossentropy"`, `"mse"`, `"huber"`,
            `"sparse_categorical_crossentropy"`.
        huber_delta: float. Delta of the Huber loss. Defaults to `1.0`.
        name: optional name.
        **kwargs: base `Loss` arguments.

    A batch in which every label is missing contributes a loss of 0 (and so
    no gradient) for this task.
    """

    def __init__(self, loss: str = "mse", huber_delta: float = 1.0, name: str | None = None,
                 **kwargs: Any) -> None:
        if loss not in _PER_EXAMPLE_LOSSES:
            raise ValueError(
                f"`loss` must be one of {sorted(_PER_EXAMPLE_LOSSES)}. Received: loss={loss!r}")
        super().__init__(name=name or f"masked_{loss}", **kwargs)
        self.loss = loss
        self.huber_delta = float(huber_delta)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        safe, mask = label_mask(y_true)
        per_example = _PER_EXAMPLE_LOSSES[self.loss](safe, y_pred, self.huber_delta)
        per_example = ops.reshape(per_example, (-1,))
        mean = ops.sum(per_example * mask) / ops.maximum(ops.sum(mask), 1.0)
        # Shape (1,), not a scalar: Keras's reduction skips a scalar, and with it the division by
        # the number of replicas under tf.distribute, which doubled the gradients and the logged
        # loss on two devices. On one device the reduction is exact (a sum of one value over 1).
        return ops.reshape(mean, (1,))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "loss": self.loss, "huber_delta": self.huber_delta}


@serializable
class MaskedMetric(keras.metrics.Metric):
    """Wraps a Keras metric so that examples with a missing (NaN) label are ignored.

    Args:
        metric: a Keras metric instance (or its serialized config).
        name: optional name; defaults to the wrapped metric's name.
        **kwargs: base `Metric` arguments.
    """

    def __init__(self, metric: Any, name: str | None = None, **kwargs: Any) -> None:
        if isinstance(metric, dict):
            metric = keras.metrics.deserialize(metric)
        super().__init__(name=name or metric.name, **kwargs)
        self.metric = metric

    def update_state(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> None:
        safe, mask = label_mask(y_true)
        if sample_weight is not None:
            mask = mask * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        self.metric.update_state(safe, y_pred, sample_weight=mask)

    def result(self) -> Tensor:
        return self.metric.result()

    def reset_state(self) -> None:
        self.metric.reset_state()

    @property
    def variables(self) -> list:
        return self.metric.variables

    def get_config(self) -> dict[str, Any]:
        return {"metric": keras.metrics.serialize(self.metric), "name": self.name}

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
    "poisson": lambda y, p, delta: keras.losses.poisson(y, p),
}

#: Label transforms the regression loss compares on (the model outputs original units).
TRANSFORMS = {
    "none": lambda x: x,
    # expm1's output is > -1; the floor keeps log1p finite for an output at its limit.
    "log1p": lambda x: ops.log1p(ops.maximum(x, -1.0 + 1e-6)),
}


def split_weights(y_true: Tensor) -> tuple[Tensor, Tensor | None]:
    """Splits `(batch, 2)` labels of a task with `sample_weight` into (labels `(batch, 1)`, weights `(batch,)`).

    A weighted task's label array carries its weight as a second column
    (`Task.prepare_weights`), so every loss call (Keras's step and the custom
    steps of `mtrec.weighting`) sees the weights without another input.
    """
    y_true = ops.cast(y_true, "float32")
    return y_true[:, :1], ops.reshape(y_true[:, 1:2], (-1,))


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
            `"sparse_categorical_crossentropy"`, `"poisson"`.
        huber_delta: float. Delta of the Huber loss. Defaults to `1.0`.
        scale: float. Labels and predictions are divided by it (after
            `transform`) before the loss: a regression task's training sd, so
            its loss is on the standardized scale. Defaults to `1.0`.
        transform: `"none"` or `"log1p"`, applied to labels and predictions
            before `scale`. Defaults to `"none"`.
        weighted: bool. Labels are `(batch, 2)`: the label and its sample
            weight; the loss is the weighted mean over present labels.
            Defaults to `False`.
        name: optional name.
        **kwargs: base `Loss` arguments.

    A batch in which every label is missing contributes a loss of 0 (and so
    no gradient) for this task.
    """

    def __init__(self, loss: str = "mse", huber_delta: float = 1.0, name: str | None = None,
                 scale: float = 1.0, transform: str = "none", weighted: bool = False,
                 **kwargs: Any) -> None:
        if loss not in _PER_EXAMPLE_LOSSES:
            raise ValueError(
                f"`loss` must be one of {sorted(_PER_EXAMPLE_LOSSES)}. Received: loss={loss!r}")
        if transform not in TRANSFORMS:
            raise ValueError(f"`transform` must be one of {sorted(TRANSFORMS)}. Received: {transform!r}")
        if not scale > 0:
            raise ValueError(f"`scale` must be > 0. Received: scale={scale!r}")
        super().__init__(name=name or f"masked_{loss}", **kwargs)
        self.loss = loss
        self.huber_delta = float(huber_delta)
        self.scale = float(scale)
        self.transform = transform
        self.weighted = bool(weighted)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        weights = None
        if self.weighted:
            y_true, weights = split_weights(y_true)
        safe, mask = label_mask(y_true)
        if weights is not None:
            mask = mask * weights
        if self.transform != "none" or self.scale != 1.0:
            # Compared on the training scale: (T(y) - T(p)) / sd. The mean cancels in the difference.
            transform = TRANSFORMS[self.transform]
            safe = transform(safe) / self.scale
            y_pred = transform(ops.cast(y_pred, "float32")) / self.scale
        per_example = _PER_EXAMPLE_LOSSES[self.loss](safe, y_pred, self.huber_delta)
        per_example = ops.reshape(per_example, (-1,))
        mean = ops.sum(per_example * mask) / ops.maximum(ops.sum(mask), 1e-12 if self.weighted else 1.0)
        # Shape (1,), not a scalar: Keras's reduction skips a scalar, and with it the division by
        # the number of replicas under tf.distribute, which doubled the gradients and the logged
        # loss on two devices. On one device the reduction is exact (a sum of one value over 1).
        return ops.reshape(mean, (1,))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "loss": self.loss, "huber_delta": self.huber_delta,
                "scale": self.scale, "transform": self.transform, "weighted": self.weighted}


@serializable
class MaskedMetric(keras.metrics.Metric):
    """Wraps a Keras metric so that examples with a missing (NaN) label are ignored.

    Args:
        metric: a Keras metric instance (or its serialized config).
        name: optional name; defaults to the wrapped metric's name.
        weighted: bool. Labels are `(batch, 2)`: the label and its sample
            weight, which weighs the metric. Defaults to `False`.
        **kwargs: base `Metric` arguments.
    """

    def __init__(self, metric: Any, name: str | None = None, weighted: bool = False, **kwargs: Any) -> None:
        if isinstance(metric, dict):
            metric = keras.metrics.deserialize(metric)
        super().__init__(name=name or metric.name, **kwargs)
        self.metric = metric
        self.weighted = bool(weighted)

    def update_state(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> None:
        if self.weighted:
            y_true, weights = split_weights(y_true)
            sample_weight = weights if sample_weight is None else (
                weights * ops.reshape(ops.cast(sample_weight, "float32"), (-1,)))
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
        return {"metric": keras.metrics.serialize(self.metric), "name": self.name, "weighted": self.weighted}

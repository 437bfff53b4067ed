"""TaskTower: a task's own MLP followed by its output layer."""

from __future__ import annotations

from typing import Any

import keras

from mtrec.layers.mlp import MLP
from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_positive_int, check_rate, check_units, serializable


@serializable
class TaskTower(keras.layers.Layer):
    """Maps a task's representation to its prediction.

    Args:
        output_units: int. 1 for binary and regression tasks, the number of
            classes for a multiclass task.
        output_activation: str or None. `"sigmoid"`, `"softmax"` or None
            (a regression value).
        units: list of int. Hidden widths of the tower. Defaults to `[8]`
            (the MMoE paper's towers).
        activation: str. Activation of the hidden layers. Defaults to `"relu"`.
        dropout: float. Dropout after each hidden layer. Defaults to `0.0`.
        **kwargs: base `Layer` arguments.

    Output shape: `(batch, output_units)`. The output layer computes in the
    policy's variable dtype (float32 under a mixed-precision policy), so the
    losses read full-precision predictions.
    """

    def __init__(
        self,
        output_units: int,
        output_activation: str | None = None,
        units: list[int] = (8,),
        activation: str = "relu",
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_units = check_positive_int(output_units, "output_units")
        self.output_activation = output_activation
        self.units = check_units(units, "units")
        self.activation = activation
        self.dropout = check_rate(dropout, "dropout")
        self.hidden = MLP(self.units, activation=activation, dropout=self.dropout, dtype=self.dtype_policy,
                          name="hidden")
        self.output_layer = keras.layers.Dense(
            self.output_units, activation=output_activation, dtype=self.dtype_policy.variable_dtype, name="output")

    def build(self, input_shape: Shape) -> None:
        self.hidden.build(input_shape)
        self.output_layer.build(self.hidden.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        return self.output_layer(self.hidden(inputs, training=training))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape[:-1]) + (self.output_units,)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "output_units": self.output_units,
            "output_activation": self.output_activation,
            "units": self.units,
            "activation": self.activation,
            "dropout": self.dropout,
        }

"""MLP: a stack of dense layers, the building block of bottoms, experts and towers."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_rate, check_units, clone_initializer, serializable


@serializable
class MLP(keras.layers.Layer):
    """A stack of `Dense` layers with optional dropout and batch normalization.

    Args:
        units: list of int. Width of each layer; an empty list makes the
            layer the identity.
        activation: str. Activation of every layer. Defaults to `"relu"`.
        dropout: float. Dropout rate after each layer. Defaults to `0.0`.
        use_batch_norm: bool. Batch normalization before each activation.
            Defaults to `False`.
        kernel_initializer: initializer of the kernels; each layer gets its
            own clone. Defaults to `"glorot_uniform"`.
        kernel_regularizer: optional regularizer of the kernels.
        **kwargs: base `Layer` arguments.

    Example:
    ```python
    mlp = MLP(units=[64, 32])
    y = mlp(np.ones((4, 10)))  # shape (4, 32)
    ```
    """

    def __init__(
        self,
        units: list[int],
        activation: str = "relu",
        dropout: float = 0.0,
        use_batch_norm: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_units(units, "units")
        self.activation = activation
        self.dropout = check_rate(dropout, "dropout")
        self.use_batch_norm = bool(use_batch_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self._blocks: list[list[keras.layers.Layer]] = []

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape)
        for i, width in enumerate(self.units):
            block: list[keras.layers.Layer] = [
                layers.Dense(
                    width,
                    activation=None if self.use_batch_norm else self.activation,
                    kernel_initializer=clone_initializer(self.kernel_initializer, i),
                    kernel_regularizer=self.kernel_regularizer,
                    dtype=self.dtype_policy,
                    name=f"dense_{i}",
                )
            ]
            if self.use_batch_norm:
                block += [layers.BatchNormalization(dtype=self.dtype_policy, name=f"batch_norm_{i}"),
                          layers.Activation(self.activation, dtype=self.dtype_policy, name=f"activation_{i}")]
            if self.dropout > 0:
                block.append(layers.Dropout(self.dropout, dtype=self.dtype_policy, name=f"dropout_{i}"))
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            self._blocks.append(block)
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = inputs
        for block in self._blocks:
            for layer in block:
                x = layer(x, training=training) if isinstance(
                    layer, (layers.Dropout, layers.BatchNormalization)) else layer(x)
        return x

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if not self.units:
            return tuple(input_shape)
        return tuple(input_shape[:-1]) + (self.units[-1],)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "dropout": self.dropout,
            "use_batch_norm": self.use_batch_norm,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer else None,
        }

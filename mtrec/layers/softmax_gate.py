"""SoftmaxGate: a task's distribution over experts, computed from the input."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable


@serializable
class SoftmaxGate(keras.layers.Layer):
    """`softmax(x W + b) / temperature` over `num_experts` experts.

    Args:
        num_experts: int. Number of experts the gate weighs.
        temperature: float. Divides the logits before the softmax: below 1
            sharpens the gate (towards one expert), above 1 flattens it.
            Defaults to `1.0`.
        kernel_initializer: initializer of the gate's kernel. Defaults to
            `"glorot_uniform"`.
        **kwargs: base `Layer` arguments.

    Input shape: `(batch, features)`.
    Output shape: `(batch, num_experts)`; each row sums to 1.
    """

    def __init__(
        self,
        num_experts: int,
        temperature: float = 1.0,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_experts = check_positive_int(num_experts, "num_experts")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(
                f"`temperature` must be a positive number. Received: temperature={temperature!r}"
            )
        self.temperature = float(temperature)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Shape) -> None:
        self.kernel = self.add_weight(
            name="kernel", shape=(int(input_shape[-1]), self.num_experts),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(name="bias", shape=(self.num_experts,), initializer="zeros")
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        logits = ops.matmul(inputs, self.kernel) + self.bias
        # In float32 under a mixed policy too: 16-bit weights would not sum to 1 within 1e-3.
        return ops.softmax(ops.cast(logits, "float32") / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], self.num_experts)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "temperature": self.temperature,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }

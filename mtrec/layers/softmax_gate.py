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
        return _probabilities(ops.matmul(inputs, self.kernel) + self.bias, self.temperature)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], self.num_experts)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "temperature": self.temperature,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def stacked_gates(gates: list[SoftmaxGate], inputs: Tensor) -> Tensor:
    """`ops.stack([gate(inputs) for gate in gates], axis=1)`, as one matmul and one softmax.

    For inference with several gates reading the same input (MMoE's task
    gates): each gate's logits are the same dot products, only computed
    together, so the outputs equal the separate gates' (bit for bit on the
    CPU kernels tested). Several small matmuls and softmaxes cost about 1.6
    times one of each, and MMoE's gates are a large part of its forward pass.
    Training keeps the separate gates: the fused gradient sums in another
    order, and trained weights would no longer match earlier runs'.

    Args:
        gates: built gates with the same `num_experts` and `temperature`.
        inputs: `(batch, features)`, the input of every gate.

    Returns:
        `(batch, len(gates), num_experts)`; each row sums to 1.
    """
    first = gates[0]
    kernel = ops.concatenate([gate.kernel for gate in gates], axis=1)
    bias = ops.concatenate([gate.bias for gate in gates], axis=0)
    logits = ops.reshape(ops.matmul(inputs, kernel) + bias, (-1, len(gates), first.num_experts))
    return _probabilities(logits, first.temperature)


def _probabilities(logits: Tensor, temperature: float) -> Tensor:
    """A gate's weights from its logits: one formula for `SoftmaxGate` and `stacked_gates`."""
    # In float32 under a mixed policy too: 16-bit weights would not sum to 1 within 1e-3.
    return ops.softmax(ops.cast(logits, "float32") / temperature, axis=-1)

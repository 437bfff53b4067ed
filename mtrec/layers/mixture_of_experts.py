"""MixtureOfExperts: an expert bank read through one softmax gate per consumer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mtrec.layers.expert_kinds import make_expert_bank
from mtrec.layers.softmax_gate import SoftmaxGate
from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable


@serializable
class MixtureOfExperts(keras.layers.Layer):
    """Shared experts mixed by `num_gates` gates (MMoE: one gate per task; OMoE: one).

    Args:
        num_gates: int. Number of gates, i.e. of mixtures returned.
        num_experts: int. Number of experts. Defaults to `8`.
        expert_units: list of int. Widths of each expert. Defaults to `[16]`.
        expert_activation: str. Defaults to `"relu"`.
        expert_dropout: float. Defaults to `0.0`.
        gate_temperature: float. See `SoftmaxGate`. Defaults to `1.0`.
        kernel_initializer: initializer of the experts' kernels.
        expert_kind: str. `"mlp"` (`ExpertBank`) or `"dcn"` (DCN-v2 cross
            network then MLP, `CrossExpertBank`). Defaults to `"mlp"`.
        num_cross_layers: int. Cross layers per DCN expert. Defaults to `2`.
        cross_projection_dim: int or None. Low-rank size of the DCN cross
            kernels; None for full rank. Defaults to `None`.
        **kwargs: base `Layer` arguments.

    Call returns a tuple `(mixtures, gates)`: `mixtures` of shape
    `(batch, num_gates, expert_units[-1])` and `gates` of shape
    `(batch, num_gates, num_experts)`, each gate row summing to 1.
    """

    def __init__(
        self,
        num_gates: int,
        num_experts: int = 8,
        expert_units: list[int] = (16,),
        expert_activation: str = "relu",
        expert_dropout: float = 0.0,
        gate_temperature: float = 1.0,
        kernel_initializer: Any = "glorot_uniform",
        expert_kind: str = "mlp",
        num_cross_layers: int = 2,
        cross_projection_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_gates = check_positive_int(num_gates, "num_gates")
        self.num_experts = check_positive_int(num_experts, "num_experts")
        self.experts = make_expert_bank(
            expert_kind, num_experts, expert_units, activation=expert_activation,
            dropout=expert_dropout, kernel_initializer=kernel_initializer,
            num_cross_layers=num_cross_layers, cross_projection_dim=cross_projection_dim,
            name="experts",
        )
        self.expert_kind = expert_kind
        self.num_cross_layers = num_cross_layers
        self.cross_projection_dim = cross_projection_dim
        self.gates = [
            SoftmaxGate(num_experts, temperature=gate_temperature, name=f"gate_{g}")
            for g in range(self.num_gates)
        ]
        self.expert_units = self.experts.units
        self.expert_activation = expert_activation
        self.expert_dropout = self.experts.dropout
        self.gate_temperature = self.gates[0].temperature
        self.kernel_initializer = self.experts.kernel_initializer

    def build(self, input_shape: Shape) -> None:
        self.experts.build(input_shape)
        for gate in self.gates:
            gate.build(input_shape)
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None) -> tuple[Tensor, Tensor]:
        expert_out = self.experts(inputs, training=training)  # (batch, experts, units)
        gates = ops.stack([gate(inputs) for gate in self.gates], axis=1)  # (batch, gates, experts)
        mixtures = ops.einsum("bge,beu->bgu", gates, expert_out)
        return mixtures, gates

    def compute_output_shape(self, input_shape: Shape) -> tuple[Shape, Shape]:
        return ((input_shape[0], self.num_gates, self.expert_units[-1]),
                (input_shape[0], self.num_gates, self.num_experts))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_gates": self.num_gates,
            "num_experts": self.num_experts,
            "expert_units": self.expert_units,
            "expert_activation": self.expert_activation,
            "expert_dropout": self.expert_dropout,
            "gate_temperature": self.gate_temperature,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "expert_kind": self.expert_kind,
            "num_cross_layers": self.num_cross_layers,
            "cross_projection_dim": self.cross_projection_dim,
        }

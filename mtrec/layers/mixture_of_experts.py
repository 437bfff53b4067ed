"""MixtureOfExperts: an expert bank read through one softmax gate per consumer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mtrec.layers.softmax_gate import SoftmaxGate, stacked_gates
from mtrec.layers.specs import ExpertSpec
from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable


@serializable
class MixtureOfExperts(keras.layers.Layer):
    """Shared experts mixed by `num_gates` gates (MMoE: one gate per task; OMoE: one).

    Args:
        num_gates: int. Number of gates, i.e. of mixtures returned.
        num_experts: int. Number of experts. Defaults to `8`.
        expert: `ExpertSpec` or its config dict: what each expert is
            (`{"kind": "mlp", "units": [16]}` by default).
        gate_temperature: float. See `SoftmaxGate`. Defaults to `1.0`.
        gate_input_dim: int or None. When set, the gates read a separate
            `(batch, gate_input_dim)` input (`call(..., gate_inputs=...)`,
            e.g. a domain embedding) instead of the experts' input.
            Defaults to `None`.
        kernel_initializer: initializer of the experts' kernels.
        **kwargs: base `Layer` arguments; the flat expert keys of mtrec 0.1
            (`expert_units`, `expert_kind`, ...) are still accepted.

    Call returns a tuple `(mixtures, gates)`: `mixtures` of shape
    `(batch, num_gates, expert.units[-1])` and `gates` of shape
    `(batch, num_gates, num_experts)`, each gate row summing to 1.
    """

    def __init__(
        self,
        num_gates: int,
        num_experts: int = 8,
        expert: ExpertSpec | dict[str, Any] | None = None,
        gate_temperature: float = 1.0,
        kernel_initializer: Any = "glorot_uniform",
        gate_input_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        spec = ExpertSpec.get(expert, kwargs)
        super().__init__(**kwargs)
        self.expert_spec = spec
        self.gate_input_dim = None if gate_input_dim is None else check_positive_int(gate_input_dim,
                                                                                     "gate_input_dim")
        self.num_gates = check_positive_int(num_gates, "num_gates")
        self.num_experts = check_positive_int(num_experts, "num_experts")
        self.experts = self.expert_spec.build(num_experts, name="experts", kernel_initializer=kernel_initializer,
                                         dtype=self.dtype_policy)
        self.gates = [
            SoftmaxGate(num_experts, temperature=gate_temperature, dtype=self.dtype_policy, name=f"gate_{g}")
            for g in range(self.num_gates)
        ]
        self.gate_temperature = self.gates[0].temperature

    def build(self, input_shape: Shape) -> None:
        self.experts.build(input_shape)
        gate_shape = input_shape if self.gate_input_dim is None else (input_shape[0], self.gate_input_dim)
        for gate in self.gates:
            gate.build(gate_shape)
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None,
             gate_inputs: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if (gate_inputs is None) != (self.gate_input_dim is None):
            raise ValueError(f"`gate_inputs` must be given exactly when `gate_input_dim` is set "
                             f"(gate_input_dim={self.gate_input_dim}).")
        expert_out = self.experts(inputs, training=training)  # (batch, experts, units)
        gate_in = inputs if gate_inputs is None else gate_inputs
        if training or len(self.gates) == 1:
            gates = ops.stack([gate(gate_in) for gate in self.gates], axis=1)  # (batch, gates, experts)
        else:  # inference: the same values from one matmul and one softmax (scoring's largest cost)
            gates = stacked_gates(self.gates, gate_in)
        mixtures = ops.einsum("bge,beu->bgu", ops.cast(gates, expert_out.dtype), expert_out)  # gates: float32
        return mixtures, gates

    def compute_output_shape(self, input_shape: Shape) -> tuple[Shape, Shape]:
        return ((input_shape[0], self.num_gates, self.expert_spec.units[-1]),
                (input_shape[0], self.num_gates, self.num_experts))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_gates": self.num_gates,
            "num_experts": self.num_experts,
            "expert": self.expert_spec.get_config(),
            "gate_temperature": self.gate_temperature,
            "kernel_initializer": self.experts.get_config()["kernel_initializer"],
            "gate_input_dim": self.gate_input_dim,
        }

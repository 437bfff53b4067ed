"""ExtractionLevel: one CGC level of PLE (Tang et al., RecSys 2020)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mtrec.layers.softmax_gate import SoftmaxGate
from mtrec.layers.specs import ExpertSpec
from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable


@serializable
class ExtractionLevel(keras.layers.Layer):
    """Customized Gate Control: task-specific experts plus shared experts, gated per task.

    Task `t`'s gate reads task `t`'s input and weighs task `t`'s own experts
    followed by the shared experts (`num_task_experts + num_shared_experts`
    weights). With `shared_gate=True` (every PLE level but the last) a
    shared gate reads the shared input and weighs all experts, task ones
    first in task order, then the shared ones; its mixture is the next
    level's shared input.

    Args:
        num_tasks: int. Number of tasks.
        num_shared_experts: int. Experts every task's gate sees. Defaults to `1`.
        num_task_experts: int. Experts of each task. Defaults to `1`.
        expert: `ExpertSpec` or its config dict: what each expert is
            (`{"kind": "mlp", "units": [16]}` by default).
        shared_gate: bool. Whether to compute the shared mixture. Defaults to `False`.
        gate_temperature: float. See `SoftmaxGate`. Defaults to `1.0`.
        gate_input_dim: int or None. When set, every gate (task and shared)
            reads a separate `(batch, gate_input_dim)` input
            (`call(..., gate_inputs=...)`, e.g. a domain embedding) instead of
            its stream. Defaults to `None`.
        **kwargs: base `Layer` arguments; the flat expert keys of mtrec 0.1
            (`expert_units`, `expert_kind`, ...) are still accepted.

    Call: `inputs` is a list of `num_tasks` tensors (one per task) plus the
    shared input last, each `(batch, features)`. Returns `(outputs, gates)`:
    `outputs` a list of `num_tasks` mixtures (plus the shared mixture when
    `shared_gate`), each `(batch, expert.units[-1])`; `gates` a list of the
    task gates (plus the shared gate), each `(batch, experts seen)`.
    """

    def __init__(
        self,
        num_tasks: int,
        num_shared_experts: int = 1,
        num_task_experts: int = 1,
        expert: ExpertSpec | dict[str, Any] | None = None,
        shared_gate: bool = False,
        gate_temperature: float = 1.0,
        gate_input_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        spec = ExpertSpec.get(expert, kwargs)
        super().__init__(**kwargs)
        self.expert_spec = spec
        self.gate_input_dim = None if gate_input_dim is None else check_positive_int(gate_input_dim,
                                                                                     "gate_input_dim")
        self.num_tasks = check_positive_int(num_tasks, "num_tasks")
        self.num_shared_experts = check_positive_int(num_shared_experts, "num_shared_experts")
        self.num_task_experts = check_positive_int(num_task_experts, "num_task_experts")
        self.shared_gate = bool(shared_gate)
        self.task_experts = [self.expert_spec.build(num_task_experts, f"task_experts_{t}", dtype=self.dtype_policy)
                             for t in range(self.num_tasks)]
        self.shared_experts = self.expert_spec.build(num_shared_experts, "shared_experts", dtype=self.dtype_policy)
        per_task = num_task_experts + num_shared_experts
        self.task_gates = [SoftmaxGate(per_task, temperature=gate_temperature, dtype=self.dtype_policy,
                                       name=f"gate_{t}") for t in range(self.num_tasks)]
        self.gate_temperature = self.task_gates[0].temperature
        self.all_gate = (SoftmaxGate(self.num_tasks * num_task_experts + num_shared_experts,
                                     temperature=gate_temperature, dtype=self.dtype_policy, name="gate_shared")
                         if self.shared_gate else None)

    def build(self, input_shape: list[Shape]) -> None:
        gate_shape = None if self.gate_input_dim is None else (input_shape[-1][0], self.gate_input_dim)
        for t in range(self.num_tasks):
            self.task_experts[t].build(input_shape[t])
            self.task_gates[t].build(gate_shape or input_shape[t])
        self.shared_experts.build(input_shape[-1])
        if self.all_gate is not None:
            self.all_gate.build(gate_shape or input_shape[-1])
        self.built = True

    def call(self, inputs: list[Tensor], training: bool | None = None,
             gate_inputs: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
        if (gate_inputs is None) != (self.gate_input_dim is None):
            raise ValueError(f"`gate_inputs` must be given exactly when `gate_input_dim` is set "
                             f"(gate_input_dim={self.gate_input_dim}).")
        shared = self.shared_experts(inputs[-1], training=training)  # (batch, S, units)
        own = [bank(x, training=training) for bank, x in zip(self.task_experts, inputs[:-1])]
        outputs, gates = [], []
        for t in range(self.num_tasks):
            gate = self.task_gates[t](inputs[t] if gate_inputs is None else gate_inputs)
            experts = ops.concatenate([own[t], shared], axis=1)
            outputs.append(ops.einsum("be,beu->bu", ops.cast(gate, experts.dtype), experts))
            gates.append(gate)
        if self.all_gate is not None:
            gate = self.all_gate(inputs[-1] if gate_inputs is None else gate_inputs)
            experts = ops.concatenate([*own, shared], axis=1)
            outputs.append(ops.einsum("be,beu->bu", ops.cast(gate, experts.dtype), experts))
            gates.append(gate)
        return outputs, gates

    def compute_output_shape(self, input_shape: list[Shape]) -> tuple[list[Shape], list[Shape]]:
        batch = input_shape[0][0]
        n_out = self.num_tasks + int(self.shared_gate)
        per_task = self.num_task_experts + self.num_shared_experts
        gate_shapes = [(batch, per_task)] * self.num_tasks
        if self.shared_gate:
            gate_shapes.append((batch, self.num_tasks * self.num_task_experts + self.num_shared_experts))
        return [(batch, self.expert_spec.units[-1])] * n_out, gate_shapes

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_tasks": self.num_tasks,
            "num_shared_experts": self.num_shared_experts,
            "num_task_experts": self.num_task_experts,
            "expert": self.expert_spec.get_config(),
            "shared_gate": self.shared_gate,
            "gate_temperature": self.gate_temperature,
            "gate_input_dim": self.gate_input_dim,
        }

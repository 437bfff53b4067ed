"""PLE: Progressive Layered Extraction, stacked CGC levels (Tang et al., RecSys 2020)."""

from __future__ import annotations

from typing import Any

from mtrec.layers.extraction_level import ExtractionLevel
from mtrec.models.gated import GatedModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable


@serializable
class PLE(GatedModel):
    """Task-specific and shared experts at every level; upper levels read lower levels' mixtures.

    Level `l` feeds task `t`'s mixture to task `t`'s experts and gate at
    level `l + 1`, and the shared mixture (from a gate over all experts) to
    the shared experts and shared gate. The last level has no shared gate;
    its task mixtures go to the towers.

    Args:
        tasks, feature_layout, tower_units, tower_activation, tower_dropout:
            see `MultiTaskModel`.
        num_levels: int. Number of CGC levels. Defaults to `2`.
        num_shared_experts: int. Shared experts per level. Defaults to `1`.
        num_task_experts: int. Experts per task per level. Defaults to `1`.
        expert, gate_temperature: see `GatedModel`.
        **kwargs: base `Model` arguments.

    `gate_weights(x)` returns `{"level<l>/<task>": (n, task + shared experts)}`
    and, below the last level, `{"level<l>/shared": (n, all experts)}`; the
    task's own experts come first, then the shared ones.
    """

    def __init__(
        self,
        tasks: list,
        feature_layout: dict[str, Any],
        num_levels: int = 2,
        num_shared_experts: int = 1,
        num_task_experts: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        self.num_levels = check_positive_int(num_levels, "num_levels")
        self.levels = [
            ExtractionLevel(
                len(self.tasks), num_shared_experts, num_task_experts, expert=self.expert_spec,
                shared_gate=level < self.num_levels - 1, gate_temperature=self.gate_temperature,
                gate_input_dim=self.gate_input_dim, dtype=self.dtype_policy, name=f"level_{level}",
            )
            for level in range(self.num_levels)
        ]

    def _gate_key(self, level: int, name: str) -> str:
        return f"level{level}/{name}"

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        x = self.embedding(inputs)
        streams = [x] * (len(self.tasks) + 1)
        gate_input = self._gate_input(inputs)
        gates: dict[str, Tensor] = {}
        for level, extraction in enumerate(self.levels):
            streams, level_gates = extraction(streams, training=training, gate_inputs=gate_input)
            names = self.task_names + (["shared"] if extraction.shared_gate else [])
            gates.update({self._gate_key(level, n): g for n, g in zip(names, level_gates)})
        return streams[:len(self.tasks)], gates

    def get_config(self) -> dict[str, Any]:
        first = self.levels[0]
        return {
            **super().get_config(),
            "num_levels": self.num_levels,
            "num_shared_experts": first.num_shared_experts,
            "num_task_experts": first.num_task_experts,
        }

"""PLE: Progressive Layered Extraction, stacked CGC levels (Tang et al., RecSys 2020)."""

from __future__ import annotations

from typing import Any, Literal

from mtrec.layers.extraction_level import ExtractionLevel
from mtrec.models.base import MultiTaskModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable


@serializable
class PLE(MultiTaskModel):
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
        expert_units: list of int. Widths of every expert. Defaults to `[16]`.
        expert_activation: str. Defaults to `"relu"`.
        expert_kind: str. `"mlp"` or `"dcn"` (a DCN-v2 cross network, then
            the MLP of `expert_units`; see `CrossExpertBank`). Defaults to `"mlp"`.
        num_cross_layers: int. Cross layers per DCN expert. Defaults to `2`.
        cross_projection_dim: int or None. Low-rank size of the DCN cross
            kernels (None: full rank). Defaults to `None`.
        gate_temperature: float. Defaults to `1.0`.
        **kwargs: base `Model` arguments.

    `gate_weights(x)` returns `{"level<l>/<task>": (n, task + shared experts)}`
    and, below the last level, `{"level<l>/shared": (n, all experts)}`; the
    task's own experts come first, then the shared ones.
    """

    gated = True

    def __init__(
        self,
        tasks: list,
        feature_layout: dict[str, Any],
        num_levels: int = 2,
        num_shared_experts: int = 1,
        num_task_experts: int = 1,
        expert_units: list[int] = (16,),
        expert_activation: str = "relu",
        gate_temperature: float = 1.0,
        expert_kind: Literal["mlp", "dcn"] = "mlp",
        num_cross_layers: int = 2,
        cross_projection_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        self.num_levels = check_positive_int(num_levels, "num_levels")
        self.embedding = self._make_embedding()
        self.levels = [
            ExtractionLevel(
                len(self.tasks), num_shared_experts, num_task_experts, expert_units,
                expert_activation=expert_activation, shared_gate=level < self.num_levels - 1,
                expert_kind=expert_kind, num_cross_layers=num_cross_layers,
            cross_projection_dim=cross_projection_dim, gate_temperature=gate_temperature, name=f"level_{level}",
            )
            for level in range(self.num_levels)
        ]

    def _gate_key(self, level: int, name: str) -> str:
        return f"level{level}/{name}"

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        x = self.embedding(inputs)
        streams = [x] * (len(self.tasks) + 1)
        gates: dict[str, Tensor] = {}
        for level, extraction in enumerate(self.levels):
            streams, level_gates = extraction(streams, training=training)
            names = self.task_names + (["shared"] if extraction.shared_gate else [])
            gates.update({self._gate_key(level, n): g for n, g in zip(names, level_gates)})
        return streams[:len(self.tasks)], gates

    def get_config(self) -> dict[str, Any]:
        first = self.levels[0]
        config = {
            **super().get_config(),
            "num_shared_experts": first.num_shared_experts,
            "num_task_experts": first.num_task_experts,
            "expert_units": first.expert_units,
            "expert_activation": first.expert_activation,
            "gate_temperature": first.gate_temperature,
            "expert_kind": first.expert_kind,
            "num_cross_layers": first.num_cross_layers,
            "cross_projection_dim": first.cross_projection_dim,
        }
        if type(self) is PLE:
            config["num_levels"] = self.num_levels
        return config


@serializable
class CGC(PLE):
    """Customized Gate Control: a single PLE level (Tang et al., RecSys 2020).

    Args: as `PLE`, without `num_levels`. `gate_weights(x)` returns
    `{task: (n, num_task_experts + num_shared_experts)}`.
    """

    #: Constructor arguments of PLE that CGC fixes (not settable in a config).
    fixed_parameters = ("num_levels",)

    def __init__(self, tasks: list, feature_layout: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(tasks, feature_layout, num_levels=1, **kwargs)

    def _gate_key(self, level: int, name: str) -> str:
        return name

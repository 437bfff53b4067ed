"""CGC: Customized Gate Control, PLE with a single level (Tang et al., RecSys 2020)."""

from __future__ import annotations

from typing import Any

from mtrec.models.ple import PLE
from mtrec.utils.keras_utils import serializable


@serializable
class CGC(PLE):
    """A single PLE level: task-specific and shared experts, one gate per task.

    Args: as `PLE`, without `num_levels`. `gate_weights(x)` returns
    `{task: (n, num_task_experts + num_shared_experts)}`.
    """

    #: Constructor arguments of PLE that CGC fixes (not settable in a config).
    fixed_parameters = ("num_levels",)

    def __init__(self, tasks: list, feature_layout: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(tasks, feature_layout, num_levels=1, **kwargs)

    def _gate_key(self, level: int, name: str) -> str:
        return name

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["num_levels"]
        return config

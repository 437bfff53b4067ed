"""BottomModel: the base of the models whose body is made of bottom MLPs (SingleTask, SharedBottom, SoftSharing, CrossStitch)."""

from __future__ import annotations

from typing import Any

from mtrec.layers.specs import BottomSpec
from mtrec.models.base import MultiTaskModel


class BottomModel(MultiTaskModel):
    """Embeddings, then bottom MLPs of one `BottomSpec` (shared or one per task), then the towers.

    Args:
        tasks, feature_layout, tower_units, tower_activation, tower_dropout:
            see `MultiTaskModel`.
        bottom: `BottomSpec` or its config dict (`units`, `activation`,
            `dropout`). Defaults to the class's `default_bottom`.
        **kwargs: base `Model` arguments. The flat keys of mtrec 0.1
            (`bottom_units`, `bottom_activation`, `bottom_dropout`) are still
            accepted, so its configs and saved models load.
    """

    #: The bottom when the config gives none.
    default_bottom: BottomSpec = BottomSpec()

    def __init__(self, tasks: list, feature_layout: dict[str, Any], bottom: BottomSpec | None = None,
                 **kwargs: Any) -> None:
        spec = BottomSpec.get(bottom, kwargs, default=self.default_bottom)
        super().__init__(tasks, feature_layout, **kwargs)
        self.bottom_spec = spec

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bottom": self.bottom_spec.get_config()}

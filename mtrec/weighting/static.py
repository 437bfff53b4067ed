"""StaticWeighting: fixed per-task loss weights (`Task.weight`), Keras' own train step."""

from __future__ import annotations

from typing import ClassVar

from mtrec.weighting.base import WeightingStrategy


class StaticWeighting(WeightingStrategy):
    """Each task's loss times its fixed `weight` from the task config; the default.

    Training runs Keras' own compiled step (the weights are the compiled loss
    weights), so this strategy adds no cost per step; it only logs the
    weights (`<task>_weight`) each epoch, like every other strategy. Works on
    every Keras backend.

    Example:
    ```yaml
    tasks:
    - {name: click, kind: binary, weight: 1.0}
    - {name: purchase, kind: binary, weight: 5.0}
    weighting: {kind: static}
    ```
    """

    kind: ClassVar[str] = "static"
    custom_step: ClassVar[bool] = False

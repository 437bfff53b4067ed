"""Task weighting strategies: how per-task losses or gradients become one update (`weighting:` in config).

| kind | what | cost per step |
|---|---|---|
| `static` | fixed `Task.weight` (the default; Keras' own step) | none |
| `uncertainty` | learned log-variances (Kendall et al. 2018) | one backward pass |
| `dwa` | dynamic weight average (Liu et al. 2019) | one backward pass |
| `gradnorm` | learned weights balancing gradient norms (Chen et al. 2018) | one pass per task |
| `pcgrad` | projection of conflicting gradients (Yu et al. 2020) | one pass per task |
| `mgda` | min-norm combination of gradients (Sener and Koltun 2018) | one pass per task |

Gradient-level strategies accept `every_k_steps`. `static`, `uncertainty`
and `dwa` run in Keras' own train step on every backend; the gradient-level
ones (`gradnorm`, `pcgrad`, `mgda`) need the TensorFlow backend and are
refused on others before training (`check_gradient_backend`).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

from mtrec.errors import ConfigError
from mtrec.utils.validation import check_keys, coerce, kind_and_params
from mtrec.weighting.base import GradientWeighting, WeightingStrategy
from mtrec.weighting.callback import WeightingLogger
from mtrec.weighting.dwa import DynamicWeightAverage
from mtrec.weighting.gradients import (
    GRADIENT_BACKENDS, check_gradient_backend, per_task_gradients, split_variables, task_losses,
)
from mtrec.weighting.gradnorm import GradNorm
from mtrec.weighting.loss_weights import TaskLossWeights  # noqa: F401  (registered for Keras)
from mtrec.weighting.mgda import MGDA, min_norm_weights
from mtrec.weighting.pcgrad import PCGrad, conflict_rate, project_conflicting
from mtrec.weighting.static import StaticWeighting
from mtrec.weighting.uncertainty import UncertaintyWeighting

#: Weighting strategies by config name (`weighting.kind`).
WEIGHTING_KINDS: dict[str, type[WeightingStrategy]] = {
    cls.kind: cls for cls in (StaticWeighting, UncertaintyWeighting, DynamicWeightAverage,
                              GradNorm, PCGrad, MGDA)
}


@dataclasses.dataclass
class WeightingConfig:
    """The `weighting:` section: a strategy's kind and its constructor arguments.

    Args:
        kind: one of `WEIGHTING_KINDS`. Defaults to `"static"`.
        params: the strategy's other keys (e.g. `alpha`, `every_k_steps`).
    """

    kind: str = "static"
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def build(self) -> WeightingStrategy:
        """A fresh strategy instance (each training run needs its own)."""
        return WEIGHTING_KINDS[self.kind](**self.params)

    def get_config(self) -> dict[str, Any]:
        """The section as plain values, every default filled in."""
        return self.build().get_config()


def parse_weighting(raw: Any, where: str = "weighting") -> WeightingConfig:
    """Validates the `weighting:` section.

    Args:
        raw: the mapping from YAML (None means static weights).
        where: the key path, for messages.

    Raises:
        ConfigError: not a mapping, unknown kind (the kinds are listed), a
            key the strategy does not take (`every_k_steps` on a loss-level
            strategy is named as such), or a value out of range.
    """
    if raw is None:
        return WeightingConfig()
    kind, params = kind_and_params(raw, WEIGHTING_KINDS, where, default="static")
    cls = WEIGHTING_KINDS[kind]
    signature = inspect.signature(cls.__init__).parameters
    allowed = [name for name in signature if name != "self"]
    if "every_k_steps" in params and "every_k_steps" not in allowed:
        gradient_kinds = sorted(k for k, c in WEIGHTING_KINDS.items() if issubclass(c, GradientWeighting))
        raise ConfigError(
            f"Config key '{where}.every_k_steps' applies to gradient-level strategies only "
            f"({gradient_kinds}); '{kind}' does not compute per-task gradients.")
    check_keys(params, allowed, where)
    hints = typing.get_type_hints(cls.__init__)
    params = {k: coerce(v, hints.get(k, Any), f"{where}.{k}") for k, v in params.items()}
    config = WeightingConfig(kind, params)
    config.build()  # range checks live in the constructors
    return config


__all__ = [
    "WeightingStrategy", "GradientWeighting", "StaticWeighting", "UncertaintyWeighting",
    "DynamicWeightAverage", "GradNorm", "PCGrad", "MGDA", "WEIGHTING_KINDS", "WeightingConfig",
    "parse_weighting", "WeightingLogger", "project_conflicting", "conflict_rate", "min_norm_weights",
    "per_task_gradients", "split_variables", "task_losses", "check_gradient_backend", "GRADIENT_BACKENDS",
]

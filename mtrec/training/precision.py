"""`training.precision`: the Keras dtype policy the model is built with.

- `float32` (the default): everything in float32.
- `mixed_bfloat16`: variables float32, computation in bfloat16 (TPUs, Ampere+ GPUs, recent CPUs).
- `mixed_float16`: variables float32, computation in float16 (GPUs); Keras scales the loss
  (`LossScaleOptimizer`, added by `compile`) so small gradients do not vanish.

Every mtrec layer passes the model's policy to its sublayers; the task heads, the gates (softmax
in float32), the losses and the metrics stay float32, so the report, `gate_weights` and scoring
read full-precision values. The model keeps its policy in `model.keras` and reloads with it.
Task weighting with its own train step computes unscaled gradients, so it is refused under
`mixed_float16`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras

from mtrec.errors import ConfigError

#: The values of `training.precision`.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def check_precision(config: Any) -> None:
    """Refuses, before training, a precision this run cannot use (named in the message)."""
    precision = config.training.precision
    if precision not in PRECISIONS:
        raise ConfigError(f"training.precision must be one of {list(PRECISIONS)}. Received: {precision!r}")
    if precision == "mixed_float16" and config.weighting.kind != "static":
        raise ConfigError(f"Task weighting '{config.weighting.kind}' runs its own train step, which does not scale "
                          "the loss that training.precision 'mixed_float16' needs; use 'mixed_bfloat16' or "
                          "weighting kind 'static'.")


@contextlib.contextmanager
def precision_scope(config: Any) -> Iterator[None]:
    """Within the block, models are built with `config.training.precision` as their dtype policy."""
    check_precision(config)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.training.precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)

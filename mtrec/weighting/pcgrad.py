"""PCGrad: projecting conflicting task gradients (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020)."""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from mtrec.types import Tensor
from mtrec.weighting.base import GradientWeighting


def project_conflicting(grads: Tensor, orders: Any = None, eps: float = 1e-12) -> Tensor:
    """PCGrad's projection of each task gradient away from the gradients it conflicts with.

    For each task i, for each other task j in `orders[i]`: if
    `g_i . g_j < 0`, then `g_i <- g_i - (g_i . g_j) / ||g_j||² g_j`, where
    `g_i` is the running (already projected) gradient of task i and `g_j`
    the original gradient of task j.

    Args:
        grads: `(num_tasks, size)`, one flattened gradient per task.
        orders: `(num_tasks, num_tasks)` integer tensor or nested list; row i
            is the order in which task i visits the tasks (entry i itself is
            skipped). Defaults to `0, 1, ..., num_tasks - 1` for every task.
        eps: guards the division for an all-zero `g_j`.

    Returns:
        `(num_tasks, size)`: the projected gradients. PCGrad's update of the
        shared variables is their sum over tasks.
    """
    grads = ops.convert_to_tensor(grads)
    n = grads.shape[0]
    if orders is None:
        orders = [list(range(n)) for _ in range(n)]
    projected = []
    for i in range(n):
        g = grads[i]
        for p in range(n):
            j = orders[i][p]
            g_j = ops.take(grads, j, axis=0)
            dot = ops.sum(g * g_j)
            conflict = ops.logical_and(dot < 0, ops.not_equal(j, i))
            g = g - ops.where(conflict, dot / ops.maximum(ops.sum(g_j * g_j), eps), 0.0) * g_j
        projected.append(g)
    return ops.stack(projected)


def conflict_rate(grads: Tensor) -> Tensor:
    """Fraction of task pairs whose gradients conflict (negative dot product)."""
    n = grads.shape[0]
    if n < 2:
        return ops.convert_to_tensor(0.0)
    gram = ops.matmul(grads, ops.transpose(grads))
    upper = ops.triu(ops.ones((n, n)), k=1)
    return ops.sum(ops.cast(gram < 0, "float32") * upper) / (n * (n - 1) / 2)


class PCGrad(GradientWeighting):
    """PCGrad: each task's gradient of the shared variables loses its component along any task it conflicts with.

    The shared variables get the sum of the projected per-task gradients;
    each task's own variables (its tower, its gates) get its ordinary
    gradient. Tasks visit the others in a random order drawn afresh every
    step (seeded by the run's seed). Task weights stay the static ones; the
    epoch logs add `pcgrad_conflict_rate`, the fraction of task pairs whose
    shared gradients conflicted, averaged over the gradient-level steps.

    Args:
        every_k_steps: int. See `GradientWeighting`. Defaults to `1`.

    Example:
    ```yaml
    weighting: {kind: pcgrad, every_k_steps: 1}
    ```
    """

    kind: ClassVar[str] = "pcgrad"

    def _build(self, model: Any, sample_inputs: dict[str, Any], learning_rate: float, seed: int) -> None:
        super()._build(model, sample_inputs, learning_rate, seed)
        self._conflict_sum = keras.Variable(0.0, trainable=False, name="conflict_sum")
        self._heavy_steps = keras.Variable(0.0, trainable=False, name="heavy_steps")

    def _orders(self) -> Tensor:
        import tensorflow as tf

        n = len(self.task_names)
        seed = tf.stack([tf.constant(self._seed, "int64"), tf.convert_to_tensor(self._step)])
        return tf.argsort(tf.random.stateless_uniform((n, n), seed=seed), axis=1)

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        self._conflict_sum.assign_add(conflict_rate(grads))
        self._heavy_steps.assign_add(1.0)
        projected = project_conflicting(grads, self._orders())
        return ops.sum(projected, axis=0), ops.ones(len(self.task_names))

    def reset_epoch(self) -> None:
        super().reset_epoch()
        self._conflict_sum.assign(0.0)
        self._heavy_steps.assign(0.0)

    def epoch_logs(self) -> dict[str, float]:
        logs = super().epoch_logs()
        steps = float(keras.ops.convert_to_numpy(self._heavy_steps))
        if steps > 0:
            logs["pcgrad_conflict_rate"] = float(keras.ops.convert_to_numpy(self._conflict_sum)) / steps
        return logs

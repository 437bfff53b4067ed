"""MGDA: the min-norm convex combination of task gradients (Sener and Koltun, NeurIPS 2018)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import keras
import numpy as np
from keras import ops

from mtrec.errors import ConfigError
from mtrec.types import Tensor
from mtrec.weighting.base import GradientWeighting

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def min_norm_weights(gram: Tensor, iterations: int = 50) -> Tensor:
    """Convex weights `lam` minimizing `||sum_t lam_t g_t||²`, from the Gram matrix of the `g_t`.

    Two tasks have a closed form; more tasks use Frank-Wolfe with an exact
    line search, starting from uniform weights (Sener and Koltun, Alg. 2).

    Args:
        gram: `(num_tasks, num_tasks)`, `gram[i, j] = g_i . g_j`.
        iterations: Frank-Wolfe steps (more than two tasks only).

    Returns:
        `(num_tasks,)` non-negative weights summing to 1.
    """
    gram = ops.cast(ops.convert_to_tensor(gram), "float32")
    n = gram.shape[0]
    if n == 1:
        return ops.ones((1,))
    if n == 2:
        denom = gram[0, 0] + gram[1, 1] - 2 * gram[0, 1]
        gamma = ops.where(denom > 1e-12, ops.clip((gram[1, 1] - gram[0, 1]) / ops.maximum(denom, 1e-12), 0, 1), 0.5)
        return ops.stack([gamma, 1 - gamma])

    def step(_, lam):
        g_lam = ops.matmul(gram, lam)
        t = ops.argmin(g_lam)
        e_t = ops.one_hot(t, n)
        aa, ab, bb = ops.sum(lam * g_lam), ops.take(g_lam, t), ops.take(ops.diagonal(gram), t)
        denom = aa + bb - 2 * ab
        gamma = ops.where(denom > 1e-12, ops.clip((bb - ab) / ops.maximum(denom, 1e-12), 0, 1), 1.0)
        return gamma * lam + (1 - gamma) * e_t

    return ops.fori_loop(0, iterations, step, ops.ones((n,)) / n)


class MGDA(GradientWeighting):
    """MGDA: the task weights that give the smallest-norm convex combination of task gradients.

    Each gradient-level step takes every task's gradient of the shared
    variables, optionally normalizes them, solves for the convex weights
    `lam` whose combination has the smallest norm (a common descent
    direction for all tasks, or a Pareto-stationary point when it is 0),
    and trains on `sum_t K lam_t L_t` (`K` tasks: weights average 1, as with
    static weights). As in the paper's code, `lam` is found on normalized
    gradients and applied to the unnormalized losses; steps between two
    gradient-level steps reuse the last weights.

    Why MGDA as the extra gradient method: it adds what the others lack, a
    multi-objective view (no task's loss is allowed to rise to first order),
    where GradNorm balances gradient magnitudes and PCGrad removes
    conflicting directions; an equal-gradient-norm rule would be close to
    GradNorm with `alpha = 0`. The paper's cheaper upper bound (MGDA-UB,
    gradients of one shared representation) does not apply to MMoE, CGC or
    PLE, where each task reads its own mixture, so this solves on the shared
    variables themselves.

    Args:
        normalization: `"none"`, `"l2"` (`g / ||g||`), `"loss"` (`g / L`) or
            `"loss+"` (`g / (L ||g||)`). Defaults to `"loss+"`.
        iterations: Frank-Wolfe steps for more than two tasks. Defaults to `50`.
        every_k_steps: int. See `GradientWeighting`. Defaults to `1`.

    Example:
    ```yaml
    weighting: {kind: mgda, normalization: loss+}
    ```
    """

    kind: ClassVar[str] = "mgda"

    def __init__(self, normalization: Literal["none", "l2", "loss", "loss+"] = "loss+",
                 iterations: int = 50, every_k_steps: int = 1) -> None:
        super().__init__(every_k_steps)
        if normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"weighting.normalization must be one of {list(NORMALIZATIONS)}. Received: {normalization!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(f"weighting.iterations must be an integer >= 1. Received: {iterations!r}")
        self.normalization = normalization
        self.iterations = iterations

    def _build(self, model: Any, sample_inputs: dict[str, Any], learning_rate: float, seed: int) -> None:
        super()._build(model, sample_inputs, learning_rate, seed)
        self.task_weights = keras.Variable(np.ones(len(self.task_names), "float32"), trainable=False,
                                           name="mgda_weights")

    def current_weights(self) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.task_weights)

    def light_weights(self) -> Tensor:
        return ops.convert_to_tensor(self.task_weights)

    def normalizers(self, grads: Tensor, losses: Tensor) -> Tensor:
        """Per-task divisors of the gradients before solving (Sener and Koltun's `gradient_normalizers`)."""
        norms = ops.sqrt(ops.sum(grads * grads, axis=1))
        losses = ops.stop_gradient(losses)
        divisor = {"none": ops.ones_like(norms), "l2": norms, "loss": losses,
                   "loss+": losses * norms}[self.normalization]
        return ops.maximum(divisor, 1e-12)

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        n = len(self.task_names)
        scaled = grads / self.normalizers(grads, losses)[:, None]
        weights = n * min_norm_weights(ops.matmul(scaled, ops.transpose(scaled)), self.iterations)
        self.task_weights.assign(weights)
        return ops.sum(weights[:, None] * grads, axis=0), weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "normalization": self.normalization, "iterations": self.iterations}

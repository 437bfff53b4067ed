"""GradNorm: learned task weights that balance gradient norms (Chen et al., ICML 2018)."""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from mtrec.errors import ConfigError
from mtrec.types import Tensor
from mtrec.weighting.base import GradientWeighting


class GradNorm(GradientWeighting):
    """GradNorm: task weights learned so that tasks train at similar rates.

    With task weights `w_t` (starting at 1), `G_t = w_t ||grad_W L_t||`
    over the shared variables `W`, the mean `G`, and the relative inverse
    training rate `r_t = (L_t / L_t(0)) / mean_j (L_j / L_j(0))`, each
    gradient-level step

    1. updates the model with the gradient of `sum_t w_t L_t`;
    2. takes one Adam step on `w` down the gradient of
       `L_grad = sum_t |G_t - mean(G) r_t ** alpha|` (the target held
       constant);
    3. clips `w` at 1e-4 and renormalizes it to sum to the number of tasks.

    `L_t(0)` is the loss of the first gradient-level step. The paper takes
    `W` to be the last shared layer, to save time; here `W` is every shared
    variable (found from the graph, so it works for every model kind), and
    `every_k_steps` is the way to save time.

    Args:
        alpha: float. Asymmetry: how strongly slow tasks are pulled up.
            Defaults to `1.5` (the paper's choice for its NYUv2 experiments).
        learning_rate: float. Adam learning rate of the task weights.
            Defaults to `0.025`.
        every_k_steps: int. See `GradientWeighting`. Defaults to `1`.

    Example:
    ```yaml
    weighting: {kind: gradnorm, alpha: 1.5, every_k_steps: 4}
    ```
    """

    kind: ClassVar[str] = "gradnorm"

    def __init__(self, alpha: float = 1.5, learning_rate: float = 0.025, every_k_steps: int = 1) -> None:
        super().__init__(every_k_steps)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
            raise ConfigError(f"weighting.alpha must be a number >= 0. Received: {alpha!r}")
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
            raise ConfigError(f"weighting.learning_rate must be a number > 0. Received: {learning_rate!r}")
        self.alpha = float(alpha)
        self.learning_rate = float(learning_rate)

    def _build(self, model: Any, sample_inputs: dict[str, Any], learning_rate: float, seed: int) -> None:
        super()._build(model, sample_inputs, learning_rate, seed)
        n = len(self.task_names)
        self.task_weights = keras.Variable(np.ones(n, "float32"), trainable=True, name="gradnorm_weights")
        self._initial_losses = keras.Variable(np.ones(n, "float32"), trainable=False, name="initial_losses")
        self._has_initial = keras.Variable(0.0, trainable=False, name="has_initial")
        self._optimizer = keras.optimizers.Adam(self.learning_rate)
        self._optimizer.build([self.task_weights])

    def current_weights(self) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.task_weights)

    def light_weights(self) -> Tensor:
        return ops.convert_to_tensor(self.task_weights)

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        import tensorflow as tf

        n = len(self.task_names)
        losses = tf.stop_gradient(losses)
        initial = tf.where(self._has_initial > 0, tf.convert_to_tensor(self._initial_losses), losses)
        self._initial_losses.assign(initial)
        self._has_initial.assign(1.0)
        weights = tf.identity(tf.convert_to_tensor(self.task_weights))  # the weights this step uses
        norms = tf.norm(grads, axis=1)
        ratio = losses / tf.maximum(initial, 1e-12)
        relative = ratio / tf.maximum(tf.reduce_mean(ratio), 1e-12)
        with tf.GradientTape() as tape:
            g = self.task_weights * norms
            target = tf.stop_gradient(tf.reduce_mean(g) * relative ** self.alpha)
            grad_loss = tf.reduce_sum(tf.abs(g - target))
        self._optimizer.apply(tape.gradient(grad_loss, [self.task_weights]), [self.task_weights])
        clipped = tf.maximum(tf.convert_to_tensor(self.task_weights), 1e-4)
        self.task_weights.assign(clipped * n / tf.reduce_sum(clipped))
        return tf.linalg.matvec(grads, weights, transpose_a=True), weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "learning_rate": self.learning_rate}

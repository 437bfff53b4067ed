"""TaskLossWeights: the variables of a loss-level weighting strategy, owned by the model.

Loss-level strategies (`uncertainty`, `dwa`) run inside Keras' own train step
on every backend: the model's `compute_loss` hands the per-task losses to the
strategy (`WeightingStrategy.reweight`). On JAX that step is a pure function
of the model's variables, so whatever the strategy reads or updates per step
(DWA's weights, uncertainty's log-variances, the per-epoch sum of the weights
used) must be a variable the model tracks; a variable held elsewhere would be
frozen into the compiled step as a constant. This layer holds them and is
attached to the model as a sub-layer. Trainable values are then trained by
the model's optimizer.

These variables are training state, not part of the model: the layer saves
and loads nothing with the model (`model.keras`, checkpoint weights), and
`mtrec.training.callbacks.WeightingState` puts them in the run's checkpoints.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from mtrec.utils.keras_utils import serializable


@serializable
class TaskLossWeights(keras.layers.Layer):
    """One value per task (trainable or not) and the per-epoch sum of the weights used.

    Registered because Keras copies a model's tracked dicts (and the layers they reach) through configs;
    it is not part of the model's own config, so a saved model never rebuilds it.

    Args:
        initial: `(num_tasks,)` starting values.
        trainable_values: whether the model's optimizer trains the values.
        **kwargs: `keras.layers.Layer` arguments (`name`).
    """

    def __init__(self, initial: np.ndarray, trainable_values: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        initial = np.asarray(initial, "float32")
        self.initial = initial.tolist()
        self.trainable_values = bool(trainable_values)
        self.values = self.add_weight(shape=initial.shape, initializer=keras.initializers.Constant(initial),
                                      trainable=trainable_values, name="values")
        self.weight_sum = self.add_weight(shape=initial.shape, initializer="zeros", trainable=False,
                                          name="weight_sum")
        self.weight_steps = self.add_weight(shape=(), initializer="zeros", trainable=False, name="weight_steps")
        self.built = True

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (Keras copies layers through their config)."""
        return {**super().get_config(), "initial": self.initial, "trainable_values": self.trainable_values}

    # Training state only: nothing in model.keras or the checkpoint's weights file (WeightingState keeps it).
    def save_own_variables(self, store: Any) -> None:
        """Saves nothing (see the module docstring)."""

    def load_own_variables(self, store: Any) -> None:
        """Loads nothing (see the module docstring)."""

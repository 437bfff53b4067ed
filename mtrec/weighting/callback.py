"""WeightingLogger: the Keras callback that feeds a strategy its epochs and logs its weights."""

from __future__ import annotations

import keras

from mtrec.weighting.base import WeightingStrategy


class WeightingLogger(keras.callbacks.Callback):
    """Adds `<task>_weight` (and any strategy-specific value) to each epoch's logs.

    The weights are the mean of the weights the strategy used over the
    epoch's steps, static weight included. Place it before the callbacks
    that write logs (`TaskMetricsLogger`, TensorBoard), so they record them.
    It also tells the strategy when an epoch starts and ends (DWA updates its
    weights then).

    Args:
        strategy: an attached `WeightingStrategy`.
    """

    def __init__(self, strategy: WeightingStrategy) -> None:
        super().__init__()
        self.strategy = strategy

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.strategy.reset_epoch()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        logs.update(self.strategy.epoch_logs())
        self.strategy.end_epoch(epoch, logs)

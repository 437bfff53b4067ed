"""The one prediction path: encoded features in, predictions by task out.

Evaluation (`mtrec.training.run`), batch scoring (`mtrec.scoring`), the
recommend stages' ranking and the correlation sweep all predict through
`predict_arrays`, so a number in a report and the same row scored later
come from the same computation.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def predict_arrays(model: Any, features: dict[str, np.ndarray],
                   batch_size: int = 16384) -> dict[str, np.ndarray]:
    """Runs the model over encoded features in large batches.

    Calls the compiled predict step directly on each slice rather than
    building a `tf.data` input per call, which is what makes scoring fast.

    Args:
        model: a trained `MultiTaskModel`.
        features: encoded features (`FeatureEncoder.transform`).
        batch_size: int. Rows per forward pass. Defaults to `16384`.

    Returns:
        Predictions by task name, one array of all the rows per task.
    """
    n = len(next(iter(features.values())))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch_size):
        batch = {k: v[start:start + batch_size] for k, v in features.items()}
        for name, value in model.predict_on_batch(batch).items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values) for name, values in parts.items()}

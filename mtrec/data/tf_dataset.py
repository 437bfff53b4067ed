"""In-memory arrays -> tf.data for the TensorFlow backend (batch before map, prefetch, seeded shuffle)."""

from __future__ import annotations

from typing import Any

import numpy as np


def num_rows(arrays: dict[str, np.ndarray]) -> int:
    """Number of rows of a dict of equally long arrays."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"Arrays have different lengths: {lengths}")
    return next(iter(lengths.values())) if lengths else 0


def make_dataset(
    features: dict[str, np.ndarray],
    labels: dict[str, np.ndarray] | None = None,
    batch_size: int = 512,
    shuffle: bool = False,
    seed: int | None = None,
) -> Any:
    """Builds a `tf.data.Dataset` of `(features, labels)` batches from arrays in memory.

    Row indices are shuffled (with `seed`, afresh each epoch) and batched
    first, then each batch is gathered in one vectorized op: one map call per
    batch, not per row.

    Args:
        features: encoded feature arrays (`FeatureEncoder.transform`).
        labels: label arrays by task name, or None for prediction.
        batch_size: rows per batch.
        shuffle: whether to reshuffle rows every epoch.
        seed: shuffle seed, for repeatable runs.

    Returns:
        A dataset yielding `(features, labels)` dicts, or `features` alone
        when `labels` is None.
    """
    import tensorflow as tf  # the data path is TensorFlow's; layers never import it

    n = num_rows(features)
    tensors = {k: tf.constant(v) for k, v in features.items()}
    label_tensors = {k: tf.constant(v) for k, v in labels.items()} if labels else None
    dataset = tf.data.Dataset.range(n)
    if shuffle:
        dataset = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def gather(index):
        x = {k: tf.gather(v, index) for k, v in tensors.items()}
        if label_tensors is None:
            return x
        return x, {k: tf.gather(v, index) for k, v in label_tensors.items()}

    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)

"""Data-parallel training over the devices of one host (`training.strategy`).

- `none` (the default): Keras's own placement, one device.
- `mirrored`: the model is replicated on every local device and each batch is split
  between them; gradients are summed across replicas before each update.
  - TensorFlow backend: `tf.distribute.MirroredStrategy` over the visible GPUs, else CPUs
    (keras >= 3.8 trains under it; `tf.distribute.MultiWorkerMirroredStrategy` does not
    work with Keras 3, so this is one host only).
  - JAX backend: `keras.distribution.DataParallel` over `keras.distribution.list_devices()`
    (the local devices; on CPU `XLA_FLAGS=--xla_force_host_platform_device_count=N` makes N).

The global batch is `training.batch_size`; each device gets an equal part of it, so it should
be a multiple of the number of devices (the last, smaller batch of an epoch too on JAX, which
places every batch evenly: `check_batch_sizes`). On TensorFlow, Keras's multi-step loop fails
under `MirroredStrategy` (a placeholder without a value), so `training.steps_per_execution` is
taken as 1 there (`fit_config`, with a warning). The weighting strategies with their own train
step (all but `static`) and gradient cosines are not available under a strategy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import keras

from mtrec.errors import ConfigError

logger = logging.getLogger(__name__)

#: The values of `training.strategy`.
STRATEGIES = ("none", "mirrored")


def check_strategy(strategy: str) -> None:
    """Raises ConfigError unless `strategy` is known and this backend can run it."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"training.strategy must be one of {list(STRATEGIES)}. Received: {strategy!r}")
    backend = keras.backend.backend()
    if strategy == "mirrored" and backend not in ("tensorflow", "jax"):
        raise ConfigError(f"training.strategy 'mirrored' runs on the tensorflow and jax backends; "
                          f"the Keras backend is '{backend}'.")


def local_devices() -> list[str]:
    """The devices a `mirrored` strategy would use, as Keras names them (e.g. 'cpu:0')."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return list(keras.distribution.list_devices())


def num_replicas(strategy: str) -> int:
    """How many devices share each batch under `strategy`."""
    return 1 if strategy == "none" else len(local_devices())


def check_batch_sizes(strategy: str, rows: int, batch_size: int, what: str = "training.batch_size") -> None:
    """On JAX, refuses batches that cannot be split evenly across the devices, naming the sizes.

    Args:
        strategy: `training.strategy`.
        rows: rows of the split (its last batch has `rows % batch_size` rows).
        batch_size: the split's batch size.
        what: the setting to name.
    """
    if strategy == "none" or keras.backend.backend() != "jax":
        return
    n = num_replicas(strategy)
    last = rows % batch_size
    if batch_size % n or last % n:
        raise ConfigError(
            f"training.strategy '{strategy}' on JAX splits every batch across {n} devices: {what}={batch_size} "
            f"with {rows} rows gives batches of {batch_size}" + (f" and {last}" if last else "")
            + f" rows; make both multiples of {n}.")


def check_compatible(strategy: str, weighting_kind: str, gradient_cosine: bool) -> None:
    """Refuses, before training, what does not run under a strategy (named in the message)."""
    if strategy == "none":
        return
    if weighting_kind != "static":
        raise ConfigError(f"Task weighting '{weighting_kind}' runs its own train step, which is not written for "
                          f"training.strategy '{strategy}'; use weighting kind 'static' or strategy 'none'.")
    if gradient_cosine:
        raise ConfigError(f"Gradient cosines between tasks (training.analysis.gradient_cosine) are not available "
                          f"under training.strategy '{strategy}'.")


def fit_config(config: Any, prepared: Any) -> Any:
    """The config to fit under `config.training.strategy`, after refusing what cannot run there.

    Args:
        config: the `ExperimentConfig`.
        prepared: its `PreparedData` (the split sizes decide the last batches).

    Returns:
        `config`, or a copy with `training.steps_per_execution` 1 (TensorFlow, `mirrored`).

    Raises:
        ConfigError: unknown strategy or backend, a weighting strategy with its own train
            step, gradient cosines, or (JAX) batches that do not split evenly across the devices.
    """
    training = config.training
    check_strategy(training.strategy)
    check_compatible(training.strategy, config.weighting.kind, training.analysis.gradient_cosine)
    check_batch_sizes(training.strategy, len(prepared.splits["train"]), training.batch_size)
    check_batch_sizes(training.strategy, len(prepared.splits["valid"]), config.scoring.batch_size,
                      "scoring.batch_size (validation)")
    if keras.backend.backend() == "tensorflow" and training.steps_per_execution > 1:
        logger.warning("training.strategy 'mirrored' on TensorFlow runs one step per execution "
                       "(training.steps_per_execution=%d is taken as 1).", training.steps_per_execution)
        return dataclasses.replace(config, training=dataclasses.replace(training, steps_per_execution=1))
    return config


@contextlib.contextmanager
def strategy_scope(strategy: str) -> Iterator[Any]:
    """Builds, compiles and fits inside this block to train data-parallel over the local devices.

    Yields:
        None for `none`; the `tf.distribute.MirroredStrategy` or the
        `keras.distribution.DataParallel` in use otherwise.
    """
    check_strategy(strategy)
    if strategy == "none":
        yield None
        return
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        mirrored = tf.distribute.MirroredStrategy(local_devices())
        with mirrored.scope():
            yield mirrored
        return
    distribution = keras.distribution.DataParallel(devices=local_devices())
    with distribution.scope():
        yield distribution


def unreplicated(model: Any, sample: dict[str, Any], compile_like: Any = None) -> Any:
    """A copy of `model` built outside any strategy: the same config and weights, one device.

    A model built under a strategy keeps it (its predict step splits every batch across the
    replicas); the copy predicts, evaluates and saves like a model trained without one.

    Args:
        model: the trained model.
        sample: a batch of inputs to build the copy on.
        compile_like: called with the copy to compile it (e.g. `run.compile_model`), if given.
    """
    copy = model.__class__.from_config(model.get_config())
    copy(sample)
    copy.set_weights(model.get_weights())
    if compile_like is not None:
        compile_like(copy)
    return copy

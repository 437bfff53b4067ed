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

Several processes (JAX only):
`initialize_processes` joins the processes named by Keras's variables (`PROCESS_VARIABLES`)
over `jax.distributed` with gloo collectives on CPU, failing with the coordinator's address
when it does not answer; under it `strategy_scope("mirrored")` spans every process's devices
(`ProcessDataParallel`: with arrays in memory every process builds the same global batches and
feeds its own share of each; streamed from prepared shards, each process reads only its own part
of every split (`process_part`, `process_local`); the processes must set the same seed, or the
initial weights differ); `local_rows` splits
rows into equal shares for code that feeds arrays itself; `unreplicated` reads each variable
from this process's device, so process 0 can save the model. `mtrec train` across processes:
`mtrec.training.multiprocess`; `mtrec launch`: `mtrec.training.launch`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import sys
import time
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


def check_batch_sizes(strategy: str, rows: int, batch_size: int, what: str = "training.batch_size",
                      streamed: bool = False) -> None:
    """On JAX, refuses batches that cannot be split evenly across the devices, naming the sizes.

    Args:
        strategy: `training.strategy`.
        rows: rows of the split (its last batch has `rows % batch_size` rows).
        batch_size: the split's batch size.
        what: the setting to name.
        streamed: the split is streamed from prepared shards; across processes each process
            then reads its own equal part, whose rows are a multiple of its devices, so only the
            batch size must split evenly.
    """
    if strategy == "none" or keras.backend.backend() != "jax":
        return
    n = num_replicas(strategy)
    last = rows % batch_size
    import jax

    if jax.process_count() > 1:  # ProcessDataParallel trims the last batch to a multiple of n
        if streamed:
            last = 0
        if batch_size % n or 0 < last < n:
            raise ConfigError(
                f"Training across {jax.process_count()} processes splits every batch across {n} devices: "
                f"{what}={batch_size} with {rows} rows gives batches of {batch_size}"
                + (f" and {last}" if last else "") + f" rows; the batch size must be a multiple of {n}, "
                f"and the last batch must have 0 or at least {n} rows.")
        return
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
    streamed = getattr(prepared, "shards", None) is not None
    check_batch_sizes(training.strategy, len(prepared.splits["train"]), training.batch_size,
                      streamed=streamed)
    check_batch_sizes(training.strategy, len(prepared.splits["valid"]), config.scoring.batch_size,
                      "scoring.batch_size (validation)", streamed=streamed)
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
    # Under jax.distributed, list_devices() is every process's devices, and every process builds
    # the same global batches: ProcessDataParallel gives each process its own share of them.
    import jax

    cls = ProcessDataParallel if jax.process_count() > 1 else keras.distribution.DataParallel
    distribution = cls(devices=local_devices())
    with distribution.scope():
        yield distribution


class ProcessDataParallel(keras.distribution.DataParallel):
    """`DataParallel` across processes where every process holds the same global `tf.data` batches.

    Each process keeps its own contiguous share of every batch: `rows // (P * d) * d` rows for P
    processes of d local devices each, so the shares have one size (JAX assembles the global
    batch from them). A batch that does not split evenly (the last of an epoch) loses its
    remainder, fewer than `P * d` rows; `check_batch_sizes` refuses a last batch of fewer rows
    than that (it would leave nothing). Keras's own sharding (`auto_shard_dataset`) rebatches and
    deals whole sub-batches out in turn, which leaves the processes with different numbers of
    steps when the last batch is small.
    """

    def distribute_dataset(self, dataset: Any) -> Any:
        import jax
        import tensorflow as tf

        processes, index, local = jax.process_count(), jax.process_index(), jax.local_device_count()
        if processes == 1 or is_process_local(dataset):
            return dataset
        step = processes * local

        def rows(*batch: Any) -> Any:
            return tf.shape(tf.nest.flatten(batch)[0])[0]

        def share(*batch: Any) -> Any:
            size = rows(*batch) // step * local
            part = tf.nest.map_structure(lambda t: t[index * size:(index + 1) * size], batch)
            return part if len(part) > 1 else part[0]

        return dataset.map(share).prefetch(tf.data.AUTOTUNE)  # map keeps the number of batches known


#: The attribute that marks a `tf.data` input as this process's own rows (`process_local`).
_PROCESS_LOCAL = "_mtrec_process_local"


def process_part() -> tuple[tuple[int, int] | None, int]:
    """This process's part of the input across processes, and its number of local devices.

    Returns:
        `((process_index, process_count), local_devices)` under `jax.distributed` with several
        processes; `(None, 1)` otherwise (one process reads everything).
    """
    if keras.backend.backend() != "jax" or "jax" not in sys.modules:
        return None, 1
    import jax

    if jax.process_count() == 1:
        return None, 1
    return (jax.process_index(), jax.process_count()), jax.local_device_count()


def process_local(dataset: Any) -> Any:
    """Marks a `tf.data` input whose batches are this process's share of each global batch.

    `ProcessDataParallel` feeds such an input as it is (Keras assembles the global batch from
    every process's share) instead of cutting this process's share out of a global batch.
    """
    setattr(dataset, _PROCESS_LOCAL, True)
    return dataset


def is_process_local(dataset: Any) -> bool:
    """Whether `dataset` was marked by `process_local`."""
    return bool(getattr(dataset, _PROCESS_LOCAL, False))


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
    copy.set_weights([host_value(w) for w in model.weights])
    if compile_like is not None:
        compile_like(copy)
    return copy


def host_value(variable: Any) -> Any:
    """A variable's value as a numpy array in this process.

    Under `jax.distributed` a replicated variable spans devices of other processes, which Keras
    cannot fetch (`model.save` fails); each process holds a full copy, read from its own device.
    """
    value = variable.value
    if keras.backend.backend() == "jax" and not getattr(value, "is_fully_addressable", True):
        import numpy as np

        return np.asarray(value.addressable_data(0))
    return keras.ops.convert_to_numpy(value)


# -- several processes (JAX) ----------------------------------------------------------------------
#: Keras's variables for training across processes; any launcher can set them (Slurm,
#: Kubernetes, Ray's JaxTrainer, `launch_local`).
PROCESS_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                     "KERAS_DISTRIBUTION_PROCESS_ID")


def initialize_processes(timeout_s: int = 60) -> tuple[int, int]:
    """Joins the processes named by `PROCESS_VARIABLES` (`jax.distributed`, gloo collectives on CPU).

    Call before anything runs on a JAX device. With no variables (or one process) it does nothing.

    Args:
        timeout_s: how long to wait for the coordinator and the other processes.

    Returns:
        `(process_id, num_processes)`.

    Raises:
        ConfigError: several processes on a backend other than JAX, or unreadable variables.
        RuntimeError: the coordinator cannot be reached within `timeout_s` (named in the message).
    """
    n = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "").strip()
    if n in ("", "1"):
        return 0, 1
    if keras.backend.backend() != "jax":
        raise ConfigError(f"Training across processes (KERAS_DISTRIBUTION_NUM_PROCESSES={n}) runs on the jax "
                          f"backend only; the Keras backend is '{keras.backend.backend()}'. Set KERAS_BACKEND=jax.")
    try:
        num = int(n)
        process_id = int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"])
        coordinator = os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"].split(",")[0].strip()
    except (KeyError, ValueError) as err:
        raise ConfigError(f"Training across processes needs {list(PROCESS_VARIABLES)} set; {err!r}") from err
    if not 0 <= process_id < num:
        raise ConfigError(f"KERAS_DISTRIBUTION_PROCESS_ID must be in [0, {num}). Received: {process_id}")
    if "jax" in sys.modules and sys.modules["jax"].distributed.is_initialized():
        return process_id, num  # joined already (a second training run in the same processes)
    if process_id != 0:
        # JAX's client aborts the whole process (a C++ fatal error) when the coordinator does not
        # answer; wait for its port first, to fail with a Python error that names it.
        _wait_for_coordinator(coordinator, process_id, num, timeout_s)
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num, process_id=process_id,
                                   initialization_timeout=timeout_s)
    except Exception as err:  # jax raises XlaRuntimeError / RuntimeError with the grpc status
        raise RuntimeError(f"Process {process_id} of {num} could not join the coordinator at {coordinator} "
                           f"within {timeout_s} s: {err}") from err
    return process_id, num


def _wait_for_coordinator(address: str, process_id: int, num: int, timeout_s: float) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise RuntimeError(f"Process {process_id} of {num} could not join the coordinator at {address} "
                                   f"within {timeout_s:g} s: {err}") from err
            time.sleep(0.5)


def local_rows(rows: int, process_id: int, num_processes: int) -> slice:
    """This process's contiguous share of `rows` rows: every process gets `rows // num_processes`.

    Equal shares keep the processes in step (the same number and sizes of batches); the last
    `rows % num_processes` rows are left out.
    """
    share = rows // num_processes
    return slice(process_id * share, (process_id + 1) * share)

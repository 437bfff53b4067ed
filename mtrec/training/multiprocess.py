"""`mtrec train` across processes: what each process does differently (JAX backend).

Any launcher starts the same `mtrec train` command in every process with Keras's variables set
(`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES`,
`KERAS_DISTRIBUTION_PROCESS_ID`): Slurm, Kubernetes, Ray's JaxTrainer, or `mtrec launch`
(`mtrec.training.launch`). `join` is the first thing `train` does:

- it joins the processes over `jax.distributed` (`distribution.initialize_processes`; a process
  that cannot reach the coordinator fails within the timeout, naming its address);
- it compares the config's hash across the processes and refuses a mismatch (`ConfigMismatchError`);
- it trains with `training.strategy: mirrored` spanning every process's devices. Streamed from a
  prepared folder, each process reads only its own equal part of every split
  (`mtrec.training.streamed.fit_inputs`). In memory, every process prepares the same rows with
  the same seed and builds the same global batches of `training.batch_size` rows, and each
  process feeds only its own share of every batch (`distribution.ProcessDataParallel`), so one
  global step sees the same rows as one process would;
- process 0 writes the run directory; every other process trains into a scratch directory of
  its own (removed when it exits), so it writes nothing under the run directory. To resume
  after any process was killed, every process copies process 0's checkpoints into its scratch
  directory first and so loads the same epoch (the run directory must then be visible to every
  process, e.g. on a shared file system).
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mtrec.errors import ConfigError, RunDirectoryError
from mtrec.training import distribution

#: Seconds a process waits for the coordinator and the others (`MTREC_PROCESS_TIMEOUT` overrides).
DEFAULT_TIMEOUT_S = 300


class ConfigMismatchError(ConfigError):
    """The processes of one training run were started with different configs."""


def config_hash(config: Any) -> str:
    """SHA-256 of the resolved config (every default filled in, keys sorted)."""
    text = yaml.safe_dump(config.get_config(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def join(config: Any, run_dir: Path, overwrite: bool = False) -> tuple[Any, Path]:
    """Joins the other processes of this run, if Keras's variables name any.

    Args:
        config: the `ExperimentConfig` this process was started with.
        run_dir: the run directory asked for.
        overwrite: whether the run replaces a completed one.

    Returns:
        `(config, run_dir)` unchanged in a single process. Across processes: the config with
        `training.strategy: mirrored`, and `run_dir` (process 0) or a fresh scratch directory.

    Raises:
        ConfigError: unreadable variables, a backend other than JAX.
        ConfigMismatchError: the processes' configs differ (in every process).
        RuntimeError: the coordinator did not answer within the timeout (named in the message).
        RunDirectoryError: `run_dir` holds a completed run and `overwrite` is off (every process).
    """
    timeout = int(os.environ.get("MTREC_PROCESS_TIMEOUT", DEFAULT_TIMEOUT_S))
    process_id, num_processes = distribution.initialize_processes(timeout_s=timeout)
    if num_processes == 1:
        return config, run_dir
    check_same_config(config, process_id, num_processes)
    if (run_dir / "report.json").exists() and not overwrite:
        # Refused in every process alike, not in process 0 alone (the others would wait for it).
        raise RunDirectoryError(f"Run directory {run_dir} already holds a completed run. "
                                "Choose another --run-dir or pass --overwrite.")
    config = dataclasses.replace(config, training=dataclasses.replace(config.training, strategy="mirrored"))
    if process_id == 0:
        return config, run_dir
    return config, scratch_run_dir(run_dir, process_id, resume=not overwrite)


def check_same_config(config: Any, process_id: int, num_processes: int) -> None:
    """Refuses to go on unless every process holds the same config (its hash, all-gathered)."""
    import numpy as np
    from jax.experimental import multihost_utils

    digest = config_hash(config)
    mine = np.frombuffer(bytes.fromhex(digest), dtype=np.uint32)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(num_processes, -1)
    differ = [i for i in range(num_processes) if not np.array_equal(every[i], every[0])]
    if differ:
        raise ConfigMismatchError(
            f"The {num_processes} processes of this run were started with different configs: "
            f"process(es) {differ} differ from process 0 (this is process {process_id}, config hash "
            f"{digest[:12]}). Start every process with the same config file and overrides.")


def scratch_run_dir(run_dir: Path, process_id: int, resume: bool = True) -> Path:
    """A fresh directory for a process other than 0, removed when the process exits.

    With `resume`, process 0's checkpoints (`run_dir/checkpoints`) are copied into it, so this
    process resumes from the same epoch as process 0.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f"mtrec-process{process_id}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    source = run_dir / "checkpoints"
    if resume and source.is_dir():
        target = scratch / "checkpoints"
        target.mkdir()
        for path in source.glob("epoch-*"):  # records, weights, state; a temporary's name starts otherwise
            shutil.copy2(path, target / path.name)
    return scratch


def exit_if_joined(message: str, debug: bool = False) -> None:
    """In a process of several, prints `message` and exits at once with status 2; otherwise returns.

    A failing process must not wait at JAX's shutdown barrier for the others (they wait for it in
    a collective until the launcher or the heartbeat timeout stops them); exiting at once lets
    `mtrec launch` stop the others and report this failure.
    """
    import sys

    if "jax" not in sys.modules:
        return
    import jax

    if not jax.distributed.is_initialized():
        return
    if debug:
        import traceback

        traceback.print_exc()
    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(2)

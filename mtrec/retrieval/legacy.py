"""The Keras 2 process: the guard for TFRS modules, and how to start such a process.

TensorFlow Recommenders is built on Keras 2 (`tf_keras`), mtrec's models on
Keras 3. TensorFlow picks the Keras behind `tf.keras` from the environment
variable `TF_USE_LEGACY_KERAS` when `tf.keras` is first used, so the two never
mix in one process: the TFRS stage runs in a child process started by
`run_legacy_module`, with the variable set before TensorFlow is imported.
Nothing in mtrec sets the variable in the calling process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from mtrec.errors import KerasVersionError, MtrecError

ENV_VAR = "TF_USE_LEGACY_KERAS"

HOW_TO_RUN = (
    "Run the retrieval stage through the command line, which starts its own Keras 2 process: "
    "`mtrec retrieval-train -c CONFIG.yaml --run-dir RUN_DIR` to train, "
    "`mtrec retrieve RUN_DIR --users USERS.parquet --k 100 OUTPUT.parquet` for candidates "
    "(or mtrec.retrieval.train_retrieval(...) from Python). To import the module directly, "
    f"start Python with {ENV_VAR}=1 set before TensorFlow is imported."
)


def legacy_keras_enabled() -> bool:
    """Whether this process asked TensorFlow for Keras 2 (`TF_USE_LEGACY_KERAS` is true)."""
    return os.environ.get(ENV_VAR, "").strip().lower() in ("1", "true", "yes")


def require_legacy_keras(module: str) -> None:
    """Raises KerasVersionError unless this process runs Keras 2 behind `tf.keras`.

    Args:
        module: the importing module's name, for the message.

    Raises:
        KerasVersionError: the variable is unset, or `tf.keras` already
            resolved to Keras 3; the message says how to run the stage.
    """
    if not legacy_keras_enabled():
        raise KerasVersionError(
            f"{module} needs Keras 2 (tf_keras) for TensorFlow Recommenders, but this process runs "
            f"Keras 3 ({ENV_VAR} is not set). {HOW_TO_RUN}")
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        keras_name = getattr(tf.keras, "__name__", "")
        if not keras_name.startswith("tf_keras"):
            raise KerasVersionError(
                f"{module} needs Keras 2, but tf.keras already resolved to '{keras_name}' in this "
                f"process ({ENV_VAR} was set after tf.keras was first used). {HOW_TO_RUN}")


def legacy_env() -> dict[str, str]:
    """The environment of a Keras 2 child process: this one's, plus `TF_USE_LEGACY_KERAS=1`."""
    env = dict(os.environ)
    env[ENV_VAR] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_legacy_module(module: str, args: Sequence[str], quiet: bool = False) -> None:
    """Runs `python -m module args...` in a Keras 2 child process and waits for it.

    Its output goes to this process's stdout/stderr as it comes (progress
    bars included) unless `quiet`.

    Args:
        module: e.g. `"mtrec.retrieval.runner"`.
        args: its command-line arguments.
        quiet: capture the child's output; it is shown only if it fails.

    Raises:
        MtrecError: the child exited with an error (its last output lines
            are in the message).
    """
    command = [sys.executable, "-m", module, *map(str, args)]
    if quiet:
        done = subprocess.run(command, env=legacy_env(), capture_output=True, text=True)
        output = (done.stdout + done.stderr).strip().splitlines()
    else:
        done = subprocess.run(command, env=legacy_env())
        output = []
    if done.returncode != 0:
        tail = "\n".join(output[-25:])
        raise MtrecError(
            f"The Keras 2 process `{' '.join(command[1:])}` failed with exit status {done.returncode}."
            + (f"\n{tail}" if tail else ""))

"""The JAX battery's subprocess, started when the suite is collected so that it runs beside the rest.

Keras fixes its backend per process, so the JAX run is one pytest subprocess
with `KERAS_BACKEND=jax` (see `tests/test_jax.py`). It is mostly one CPU's
work, and the TensorFlow tests are mostly one CPU's work too: started at
collection (`tests/conftest.py`) instead of when its test comes up, it runs
on the second CPU while they run, and its test only collects the result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import REPO

#: What the subprocess runs: the layer and model contract battery, then the training checks.
TARGETS = ["tests/test_layers.py::test_layer_contract", "tests/test_models.py::test_model_contract",
           "tests/jax_checks.py"]
#: The test that collects the result; the subprocess is started only when it is collected.
NODE_ID = "tests/test_jax.py::test_contract_battery_training_saving_and_scoring_on_jax"
TIMEOUT_S = 1500

_process: subprocess.Popen | None = None
_output: Path | None = None


def start() -> None:
    """Starts the subprocess (once); its output goes to a temporary file (no pipe to fill)."""
    global _process, _output
    if _process is not None:
        return
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    handle, name = tempfile.mkstemp(prefix="mtrec-jax-battery-", suffix=".log")
    _output = Path(name)
    _process = subprocess.Popen([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rs", *TARGETS],
                                cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    os.close(handle)


def result() -> tuple[int, str]:
    """Waits for the subprocess (starting it if collection did not) and returns its exit code and output."""
    start()
    assert _process is not None and _output is not None
    try:
        code = _process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _process.kill()
        code = _process.wait()
    return code, _output.read_text(errors="replace")


def stop() -> None:
    """Ends a subprocess still running (the session ended first, e.g. `-x`) and removes its output."""
    if _process is not None and _process.poll() is None:
        _process.kill()
        _process.wait()
    if _output is not None:
        _output.unlink(missing_ok=True)

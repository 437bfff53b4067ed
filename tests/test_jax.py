"""The JAX backend in every suite run: one pytest subprocess with `KERAS_BACKEND=jax` (Keras fixes
its backend per process) over the layer and model contract battery (`tests/contract.py`) and
`tests/jax_checks.py` (a training run, `.keras` save and reload, scoring, and the named refusal of
what is TensorFlow-only). Skips where jax is not installed (the `test` extra installs it)."""

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

TARGETS = ["tests/test_layers.py::test_layer_contract", "tests/test_models.py::test_model_contract",
           "tests/jax_checks.py"]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install -e '.[test]')")
def test_contract_battery_training_saving_and_scoring_on_jax():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rs", *TARGETS],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    tail = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, tail
    # The battery ran on JAX (its test ids carry the backend), and so did the training checks.
    assert "-jax] PASSED" in done.stdout and "jax_checks.py::test_scoring_matches_the_model PASSED" in done.stdout, tail

"""The JAX backend in every suite run: one pytest subprocess with `KERAS_BACKEND=jax` (Keras fixes
its backend per process) over the layer and model contract battery (`tests/contract.py`) and
`tests/jax_checks.py` (a training run, `.keras` save and reload, scoring, and the named refusal of
what is TensorFlow-only). Skips where jax is not installed (the `test` extra installs it). The
subprocess starts when the suite is collected and runs beside the other tests (`tests/jax_battery.py`)."""

import importlib.util

import pytest

from tests import jax_battery


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (pip install -e '.[test]')")
def test_contract_battery_training_saving_and_scoring_on_jax():
    code, output = jax_battery.result()  # started at collection (tests/conftest.py), beside the other tests
    tail = output[-6000:]
    assert code == 0, tail
    # The battery ran on JAX (its test ids carry the backend), and so did the training checks.
    assert "-jax] PASSED" in output and "jax_checks.py::test_scoring_matches_the_model PASSED" in output, tail

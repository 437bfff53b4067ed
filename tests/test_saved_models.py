"""Models saved by mtrec 0.1 (`tests/data/models_0_1`, written by its `make_fixtures.py`) load
with the current code and give the same predictions and gate weights."""

from pathlib import Path

import keras
import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "data" / "models_0_1"
CASES = sorted(p.stem for p in FIXTURES.glob("*.keras"))


def test_every_model_kind_has_a_fixture():
    from mtrec.models import MODEL_KINDS

    assert set(MODEL_KINDS) <= set(CASES) and "mmoe_dcn" in CASES


@pytest.mark.parametrize("case", CASES)
def test_saved_model_of_0_1_loads_with_identical_outputs(case):
    model = keras.models.load_model(FIXTURES / f"{case}.keras")
    arrays = np.load(FIXTURES / f"{case}.npz")
    x = {k[2:]: arrays[k] for k in arrays.files if k.startswith("x_")}
    predictions = model.predict(x, verbose=0)
    expected = {k[2:]: arrays[k] for k in arrays.files if k.startswith("y_")}
    assert set(predictions) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(predictions[name], value, rtol=1e-6, atol=1e-7)
    gates = {k[2:]: arrays[k] for k in arrays.files if k.startswith("g_")}
    assert bool(gates) == model.gated
    if gates:
        weights = model.gate_weights(x)
        assert set(weights) == set(gates)
        for key, value in gates.items():
            np.testing.assert_allclose(weights[key], value, rtol=1e-6, atol=1e-7)

"""`training.precision`: a mixed-precision run (bfloat16 on CPU) on the TensorFlow backend.

The JAX check is `mixed_bfloat16_run` in tests/jax_checks.py.
"""

import json

import keras
import numpy as np
import pytest

from mtrec.config import apply_overrides, parse_config
from mtrec.errors import ConfigError
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.training.predict import predict_arrays
from mtrec.training.run import train
from mtrec.training.trained_run import load_run

FAST = ["training.epochs=2", "data.synthetic.n_rows=600", "training.verbose=0", "training.early_stopping=null"]


def check_mixed_run(result, run_dir) -> None:
    """What a `mixed_bfloat16` run must give, on any backend (also called by tests/jax_checks.py)."""
    model = result.model
    assert model.dtype_policy.name == "mixed_bfloat16"
    # Every sublayer has the model's policy but the task heads (float32 outputs); variables stay float32.
    layers = list(model._flatten_layers(include_self=False))
    heads = [tower.output_layer for tower in model.towers]
    assert {layer.dtype_policy.name for layer in heads} == {"float32"}
    others = {layer.name: layer.dtype_policy.name for layer in layers if all(layer is not h for h in heads)}
    assert len(others) > 5 and set(others.values()) == {"mixed_bfloat16"}, others
    assert {v.dtype for v in model.weights} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"  # the policy ends with the run
    features = result.prepared.splits["test"].features
    outputs = model(features)
    assert {str(keras.ops.convert_to_numpy(o).dtype) for o in outputs.values()} == {"float32"}
    gates = model.gate_weights(features)
    for g in gates.values():
        assert g.dtype == np.float32
        np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-3)
    history = json.loads((run_dir / "metrics.json").read_text())
    losses = [e["train"]["total"]["loss"] for e in history]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    report = json.loads((run_dir / "report.json").read_text())
    for task in report["test"].values():
        assert np.isfinite(task["rmse"])
    # The model reloads with its policy and predicts as it did.
    loaded = load_run(run_dir)
    assert loaded.model.dtype_policy.name == "mixed_bfloat16"
    before = predict_arrays(model, features, 256)
    after = predict_arrays(loaded.model, features, 256)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_mixed_bfloat16_run_trains_in_bfloat16_and_reports_in_float32(tmp_path):
    config = parse_config(apply_overrides(QUICKSTART_CONFIG, [*FAST, "training.precision=mixed_bfloat16"]))
    result = train(config, tmp_path / "run")
    check_mixed_run(result, tmp_path / "run")


def test_mixed_float16_with_a_custom_step_weighting_is_refused_before_training(tmp_path):
    config = parse_config(apply_overrides(QUICKSTART_CONFIG, [*FAST, "training.precision=mixed_float16",
                                                              "weighting.kind=uncertainty"]))
    with pytest.raises(ConfigError, match="Task weighting 'uncertainty'.*mixed_float16"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_an_unknown_precision_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="training.precision.*mixed_bfloat16"):
        parse_config(apply_overrides(QUICKSTART_CONFIG, ["training.precision=float16"]))

"""The contract battery: the same checks over every exported layer and every model kind.

In the spirit of scikit-learn's `parametrize_with_checks`: a `Case` says how
to make an object and its inputs; each check takes a case and asserts one
part of the contract. `tests/test_layers.py` and `tests/test_models.py`
parametrize `(case, check)` over `layer_cases()` / `model_cases()` and
`CHECKS`; a layer exported from `mtrec.layers` or a kind added to
`MODEL_KINDS` without a case fails `test_every_*_has_a_case`.

The checks:
- `build_and_call`: output shapes and finite values; `compute_output_shape` agrees.
- `config_round_trip`: `from_config(get_config())` builds the same object (same config, same weight count).
- `fit_step`: one `fit` step runs and moves a trainable weight.
- `keras_round_trip`: a `.keras` save and reload gives identical outputs.
- `mixed_precision`: under `mixed_bfloat16`, variables stay float32, the computation runs in
  bfloat16, task heads output float32 and a training step gives a finite loss.

`BACKENDS` lists the Keras backends the battery runs on: the one this process
runs (Keras picks its backend at import, so another backend needs its own
process, e.g. `KERAS_BACKEND=jax pytest tests/test_layers.py`).
`tests/test_jax.py` runs the battery that way on JAX in every suite run. A
check that cannot run on a backend, or that another case already covers there
(to keep the suite short), skips there with the reason (`Case.skip_on`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest

#: Backends the battery covers in this process.
BACKENDS = [keras.backend.backend()]


@dataclasses.dataclass
class Case:
    """One object under contract.

    Args:
        id: the test id.
        make: builds a fresh, unbuilt layer or model.
        inputs: returns a numpy input batch (array, list or dict).
        model: whether `make` returns a `MultiTaskModel` (else a layer).
        labels: for models, the label dict of `inputs`.
        eager_fit: run the fit step eagerly (tracing some graphs costs seconds on CPU).
        skip: {check: why} for checks another case already covers (kept short for time).
        skip_on: {backend: {check: why}}: the same, on one backend only.
    """

    id: str
    make: Callable[[], Any]
    inputs: Callable[[], Any]
    model: bool = False
    labels: Callable[[], dict[str, np.ndarray]] | None = None
    eager_fit: bool = False
    skip: dict[str, str] = dataclasses.field(default_factory=dict)
    skip_on: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Sets the global Keras dtype policy for the block, then restores it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _numpy(tree: Any) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(x)) for x in keras.tree.flatten(tree)]


def _shapes(shape: Any) -> list[tuple]:
    """The flat list of shapes in a (nested) `compute_output_shape` result."""
    if isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, int) for d in shape):
        return [tuple(shape)]
    return [s for part in shape for s in _shapes(part)]


def _symbolic(x: Any) -> Any:
    """Keras inputs of the structure, shapes (batch excluded) and dtypes of numpy batch `x`."""
    def spec(a: np.ndarray, name: str | None = None) -> Any:
        return keras.Input(shape=a.shape[1:], dtype=str(a.dtype), name=name)

    if isinstance(x, dict):
        return {k: spec(v, k) for k, v in x.items()}
    return [spec(a) for a in x] if isinstance(x, (list, tuple)) else spec(x)


def _functional(layer: Any, x: Any) -> keras.Model:
    """Wraps a layer in a functional model with flat outputs (so it can be fit and saved)."""
    inputs = _symbolic(x)
    return keras.Model(inputs, keras.tree.flatten(layer(inputs)))


def _trainable(obj: Any, case: Case, x: Any, *, eager: bool = False) -> tuple[Any, Any, Any]:
    """(the model to fit, its inputs, its targets): the model itself, or the layer wrapped."""
    if case.model:
        obj(x)
        obj.compile_for_tasks("adam", run_eagerly=eager or case.eager_fit)
        return obj, x, case.labels()
    model = _functional(obj, x)
    targets = [np.zeros(tuple(o.shape), dtype="float32") for o in keras.tree.flatten(model(x))]
    model.compile("adam", loss=["mse"] * len(targets), run_eagerly=eager or case.eager_fit)
    return model, x, targets


# -- checks ---------------------------------------------------------------------------------------
def build_and_call(case: Case) -> None:
    obj, x = case.make(), case.inputs()
    outputs = obj(x)
    for value in _numpy(outputs):
        assert np.isfinite(value.astype("float64")).all()
    if case.model:
        for name, task in zip(obj.task_names, obj.tasks):
            assert tuple(outputs[name].shape) == (len(next(iter(x.values()))), task.output_units)
        return
    shapes = keras.tree.map_structure(lambda a: a.shape, x)
    expected = _shapes(obj.compute_output_shape(shapes))
    got = [tuple(o.shape) for o in keras.tree.flatten(outputs)]
    # compute_output_shape may leave the batch dimension as None.
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        assert len(e) == len(g) and all(a in (None, b) for a, b in zip(e, g)), (expected, got)


def config_round_trip(case: Case) -> None:
    obj, x = case.make(), case.inputs()
    obj(x)
    config = obj.get_config()
    clone = obj.__class__.from_config(config)
    clone(x)
    assert clone.get_config() == config
    assert clone.count_params() == obj.count_params()


def fit_step(case: Case) -> None:
    obj, x = case.make(), case.inputs()
    model, fit_x, targets = _trainable(obj, case, x)
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights]
    assert before, "nothing to train"
    history = model.fit(fit_x, targets, epochs=1, batch_size=len(keras.tree.flatten(x)[0]), verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after)), "no trainable weight moved"


def keras_round_trip(case: Case, tmp_path: Any) -> None:
    obj, x = case.make(), case.inputs()
    model = obj if case.model else _functional(obj, x)
    model(x)
    path = tmp_path / "object.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    for before, after in zip(_numpy(model(x, training=False)), _numpy(reloaded(x, training=False))):
        np.testing.assert_array_equal(before, after)


def mixed_precision(case: Case) -> None:
    with dtype_policy("mixed_bfloat16"):
        obj, x = case.make(), case.inputs()
        outputs = obj(x)
        assert obj.compute_dtype == "bfloat16"
        assert obj.weights and all(w.dtype == "float32" for w in obj.weights), \
            sorted({(w.path, w.dtype) for w in obj.weights if w.dtype != "float32"})
        if case.model:
            # Task heads compute in float32, so the losses read full-precision predictions.
            assert all(v.dtype == "float32" for v in outputs.values())
        for value in _numpy(outputs):
            assert np.isfinite(value.astype("float64")).all()
        model, fit_x, targets = _trainable(obj, case, x, eager=True)
        history = model.fit(fit_x, targets, epochs=1, batch_size=len(keras.tree.flatten(x)[0]), verbose=0)
        assert np.isfinite(history.history["loss"][-1])


#: The checks, by name (the test ids).
CHECKS: dict[str, Callable[..., None]] = {
    "build_and_call": build_and_call,
    "config_round_trip": config_round_trip,
    "fit_step": fit_step,
    "keras_round_trip": keras_round_trip,
    "mixed_precision": mixed_precision,
}

#: Checks that test no backend code: they run in the TensorFlow suite only.
BACKEND_NEUTRAL = {"config_round_trip": "get_config/from_config hold no backend code: checked on TensorFlow"}


def run_check(name: str, case: Case, tmp_path: Any) -> None:
    """Runs check `name` on `case` (only `keras_round_trip` needs a folder), or skips it with the case's reason."""
    reasons = {**case.skip, **case.skip_on.get(keras.backend.backend(), {})}
    if keras.backend.backend() != "tensorflow" and name in BACKEND_NEUTRAL:
        reasons[name] = BACKEND_NEUTRAL[name]
    if name in reasons:
        pytest.skip(reasons[name])
    check = CHECKS[name]
    check(case, tmp_path) if name == "keras_round_trip" else check(case)

"""Tests of mtrec.data.synthetic: the MMoE paper's synthetic generator."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mtrec.data.synthetic import (
    SyntheticConfig,
    make_synthetic,
    synthetic_sine_parameters,
    synthetic_task_weights,
)
from mtrec.errors import ConfigError
from mtrec.utils.validation import from_config


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def label_correlation(correlation: float, seed: int = 0, n_rows: int = 20000) -> float:
    frame = make_synthetic(n_rows, correlation=correlation, seed=seed)
    return float(np.corrcoef(frame["y0"], frame["y1"])[0, 1])


def test_shapes_dtypes_and_names():
    frame = make_synthetic(123, num_features=12, num_tasks=3, seed=4)
    assert frame.shape == (123, 15)
    assert list(frame.columns) == [f"x{j}" for j in range(12)] + ["y0", "y1", "y2"]
    assert all(dtype == np.float32 for dtype in frame.dtypes)
    binary = make_synthetic(50, num_features=5, binarize=True)
    assert [str(binary[c].dtype) for c in ("y0", "y1")] == ["int8", "int8"]
    assert set(np.unique(binary[["y0", "y1"]].to_numpy())) <= {0, 1}


def test_defaults_are_the_papers():
    frame = make_synthetic(10)
    assert frame.shape == (10, 100 + 2)  # d = 100, two tasks
    assert dataclasses.asdict(SyntheticConfig())["noise_std"] == pytest.approx(math.sqrt(0.01))


@pytest.mark.parametrize("p", [-0.7, 0.0, 0.5, 0.9, 1.0])
def test_weight_cosine_and_norm(p):
    weights = synthetic_task_weights(100, p, 2, seed=3, scale=2.5)
    assert weights.shape == (2, 100)
    assert cosine(weights[0], weights[1]) == pytest.approx(p, abs=1e-12)
    assert np.linalg.norm(weights, axis=1) == pytest.approx([2.5, 2.5])


def test_weight_cosines_with_more_tasks():
    p = 0.6
    weights = synthetic_task_weights(20, p, 4, seed=1)
    for k in range(1, 4):
        assert cosine(weights[0], weights[k]) == pytest.approx(p)
        for j in range(1, k):
            assert cosine(weights[j], weights[k]) == pytest.approx(p * p)
    # Adding tasks keeps the earlier tasks' weights.
    assert np.allclose(synthetic_task_weights(20, p, 2, seed=1), weights[:2])


def test_labels_follow_the_papers_formula():
    seed, p = 5, 0.3
    frame = make_synthetic(400, num_features=8, correlation=p, num_sines=4, noise_std=0.0, seed=seed)
    weights = synthetic_task_weights(8, p, 2, seed=seed)
    alphas, betas = synthetic_sine_parameters(4, seed=seed)
    x = frame[[f"x{j}" for j in range(8)]].to_numpy(np.float64)
    for k in range(2):
        dot = x @ weights[k]
        expected = dot + sum(np.sin(a * dot + b) for a, b in zip(alphas, betas))
        # x is stored as float32, so allow float32 rounding.
        assert np.allclose(frame[f"y{k}"].to_numpy(), expected, atol=1e-4)


def test_noise_has_the_requested_spread():
    common = dict(num_features=10, correlation=0.5, seed=2)
    clean = make_synthetic(20000, noise_std=0.0, **common)
    noisy = make_synthetic(20000, noise_std=0.1, **common)
    residual = (noisy["y0"] - clean["y0"]).to_numpy(np.float64)
    assert np.std(residual) == pytest.approx(0.1, rel=0.03)
    assert abs(np.mean(residual)) < 0.005


def test_label_correlation_rises_with_weight_cosine():
    low, mid, high = (label_correlation(p) for p in (0.0, 0.5, 0.9))
    assert abs(low) < 0.05
    assert mid > low + 0.1
    assert high > mid + 0.1
    assert label_correlation(1.0) > 0.95  # identical weights, independent noise only


def test_same_seed_same_data_other_seed_other_data():
    a = make_synthetic(300, num_features=10, seed=11)
    b = make_synthetic(300, num_features=10, seed=11)
    c = make_synthetic(300, num_features=10, seed=12)
    assert a.equals(b)
    assert not np.allclose(a["y0"], c["y0"])


def test_task_function_does_not_depend_on_n_rows():
    small = make_synthetic(40, num_features=10, correlation=0.7, seed=9)
    large = make_synthetic(1000, num_features=10, correlation=0.7, seed=9)
    # The first rows are the same rows...
    assert small.equals(large.iloc[:40].reset_index(drop=True))
    # ...and the labels of the large call come from the same function of x.
    weights = synthetic_task_weights(10, 0.7, 2, seed=9)
    alphas, betas = synthetic_sine_parameters(10, seed=9)
    x = large[[f"x{j}" for j in range(10)]].to_numpy(np.float64)
    dot = x @ weights[1]
    expected = dot + np.sin(dot[:, None] * alphas + betas).sum(axis=1)
    assert (large["y1"].to_numpy() - expected).std() == pytest.approx(0.1, rel=0.1)  # only noise


def test_binarize_splits_at_the_median():
    common = dict(num_features=10, correlation=0.5, seed=6)
    binary = make_synthetic(5001, binarize=True, **common)
    real = make_synthetic(5001, **common)
    for k in ("y0", "y1"):
        assert binary[k].mean() == pytest.approx(0.5, abs=0.01)
        expected = (real[k].to_numpy(np.float64) > np.median(real[k].to_numpy(np.float64)))
        assert np.array_equal(binary[k].to_numpy(), expected.astype(np.int8))


@pytest.mark.parametrize("kwargs, name", [
    ({"correlation": 1.5}, "correlation"),
    ({"correlation": float("nan")}, "correlation"),
    ({"num_features": 2, "num_tasks": 3}, "num_features"),
    ({"n_rows": 0}, "n_rows"),
    ({"num_tasks": 0}, "num_tasks"),
    ({"scale": 0.0}, "scale"),
    ({"noise_std": -0.1}, "noise_std"),
    ({"num_sines": -1}, "num_sines"),
    ({"seed": -3}, "seed"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    arguments = {"n_rows": 10, **kwargs}
    with pytest.raises(ConfigError, match=rf"`{name}` must .*Received: {name}="):
        make_synthetic(**arguments)
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        make_synthetic(**arguments)


def test_config_from_config_and_errors():
    config = from_config(SyntheticConfig, {"n_rows": 500, "correlation": 1, "num_tasks": 3},
                       "data.synthetic")
    assert config.correlation == 1.0
    frame = make_synthetic(**dataclasses.asdict(config))
    assert frame.shape == (500, 103)
    with pytest.raises(ConfigError, match=r"'data.synthetic.correlation' must be a number in \[-1, 1\]"):
        from_config(SyntheticConfig, {"correlation": -2}, "data.synthetic")
    with pytest.raises(ConfigError, match=r"Unknown config key 'data.synthetic.rows'"):
        from_config(SyntheticConfig, {"rows": 5}, "data.synthetic")
    with pytest.raises(ConfigError, match=r"'data.synthetic.num_features' must be at least num_tasks"):
        SyntheticConfig(num_features=1)

"""Shared fixtures: small encoded inputs and a quiet TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def shared_datasets() -> Path | None:
    """`MTREC_DATA_DIR`, else ../shared/datasets when it exists."""
    env = os.environ.get("MTREC_DATA_DIR")
    if env:
        return Path(env)
    default = REPO.parent / "shared" / "datasets"
    return default if default.is_dir() else None


def built_model(config):
    """Prepares `config`'s data and builds its model on one training row.

    Returns:
        `(model, prepared)`: the built, uncompiled model and the prepared data.
    """
    from mtrec.training.prepare import prepare
    from mtrec.training.run import build_model

    prepared = prepare(config)
    model = build_model(config, prepared.encoder.layout())
    model({k: v[:1] for k, v in prepared.splits["train"].features.items()})
    return model, prepared


@pytest.fixture
def layout():
    """A feature layout with numeric columns, a shared table and a multi-valued feature."""
    return {
        "numeric_dim": 5,
        "tables": {"items": {"input_dim": 12, "output_dim": 4}, "users": {"input_dim": 7, "output_dim": 3}},
        "categorical": {"item": "items", "last_item": "items", "user": "users"},
        "multi_categorical": {"genres": "items"},
    }


@pytest.fixture
def inputs():
    """Encoded inputs matching the `layout` fixture (64 rows)."""
    rng = np.random.default_rng(0)
    n = 64
    return {
        "numeric": rng.normal(size=(n, 5)).astype("float32"),
        "item": rng.integers(0, 12, n).astype("int32"),
        "last_item": rng.integers(0, 12, n).astype("int32"),
        "user": rng.integers(0, 7, n).astype("int32"),
        "genres": rng.integers(0, 12, (n, 3)).astype("int32"),
    }


def pytest_collection_modifyitems(session, config, items):
    """Starts the JAX battery's subprocess now, when its test is to run, so that it runs beside the rest."""
    import importlib.util

    from tests import jax_battery

    if config.option.collectonly or importlib.util.find_spec("jax") is None:
        return
    if any(item.nodeid == jax_battery.NODE_ID for item in items):
        jax_battery.start()


def pytest_sessionfinish(session, exitstatus):
    from tests import jax_battery

    jax_battery.stop()

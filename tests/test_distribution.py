"""`training.strategy: mirrored`: data-parallel over two CPU devices of one host, each backend in
its own process (tests/distribution_run.py), and the refusals before training."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from mtrec.config import apply_overrides, parse_config
from mtrec.errors import ConfigError
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.training.run import train
from tests.conftest import REPO

FAST = ["training.epochs=1", "data.synthetic.n_rows=300", "training.verbose=0"]


def _run(tmp_path, backend, *overrides):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "tests/distribution_run.py", str(tmp_path / "run"), *overrides],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return done


def _check_trained(out):
    assert len(out["devices"]) == 2, out
    assert out["loss"][-1] < out["loss"][0], out
    # The report and the reload use a one-device copy: every test row predicted once, identically.
    assert set(out["predicted_rows"].values()) == {out["test_rows"]}
    assert out["reload_max_diff"] == 0.0
    for task in out["test"].values():
        assert task["rmse"] < task["baseline"], out


@pytest.mark.parametrize("backend", [
    "tensorflow",
    pytest.param("jax", marks=pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                                  reason="jax is not installed (pip install -e '.[test]')")),
])
def test_mirrored_trains_on_two_cpu_devices(backend, tmp_path):
    done = _run(tmp_path, backend)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend
    _check_trained(out)
    assert (tmp_path / "run" / "model.keras").exists()


def test_jax_refuses_batches_that_do_not_split_across_the_devices(monkeypatch):
    from mtrec.training import distribution

    monkeypatch.setattr(distribution.keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(distribution, "num_replicas", lambda strategy: 2)
    distribution.check_batch_sizes("mirrored", 1200, 100)  # 12 batches of 100
    with pytest.raises(ConfigError, match="training.batch_size=99 with 1200 rows gives batches of 99 and 12 rows; "
                                          "make both multiples of 2"):
        distribution.check_batch_sizes("mirrored", 1200, 99)
    with pytest.raises(ConfigError, match="batches of 100 and 1 rows"):
        distribution.check_batch_sizes("mirrored", 1201, 100)
    distribution.check_batch_sizes("none", 1201, 99)


def test_unknown_strategy_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="strategy"):
        parse_config(apply_overrides(QUICKSTART_CONFIG, ["training.strategy=multiworker"]))


@pytest.mark.parametrize("override,message", [
    ("weighting.kind=gradnorm", "Task weighting 'gradnorm'.*training.strategy 'mirrored'"),
    ("training.analysis.gradient_cosine=true", "Gradient cosines.*training.strategy 'mirrored'"),
])
def test_what_a_strategy_cannot_run_is_refused_before_training(override, message, tmp_path):
    config = parse_config(apply_overrides(QUICKSTART_CONFIG, [*FAST, "training.strategy=mirrored", override]))
    with pytest.raises(ConfigError, match=message):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run" / "model.keras").exists()

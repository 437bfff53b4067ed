"""`training.strategy: mirrored`: data-parallel over two CPU devices of one host, each backend in
its own process (tests/distribution_run.py), and the refusals before training."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
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


JAX = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")


@JAX
def test_two_processes_on_loopback_train_and_process_0_writes_a_model_that_reloads(tmp_path, capfd):
    import time

    from mtrec.training.distribution import launch_local

    started = time.monotonic()
    codes = launch_local(2, ["tests/multiprocess_run.py", str(tmp_path)], cwd=str(REPO), timeout_s=240,
                         env={"JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": ""})
    seconds = time.monotonic() - started
    captured = capfd.readouterr()
    assert codes == [0, 0], captured.err[-4000:]
    lines = [json.loads(line) for line in captured.out.splitlines() if line.startswith('{"process"')]
    assert sorted(line["process"] for line in lines) == [0, 1]
    assert all(line["processes"] == 2 and line["devices"] == 2 and line["rows"] == 2048 for line in lines)
    first, second = lines
    # One model: the same losses (all-reduced) and the same weights in both processes.
    assert first["loss"] == second["loss"] and first["checksum"] == second["checksum"]
    assert first["loss"][-1] < first["loss"][0]
    # Process 0 alone wrote the model; it reloads to the predictions both processes made.
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
    import keras
    import numpy as np

    x = np.random.default_rng(0).normal(size=(4096, 5)).astype("float32")[:64]
    reloaded = keras.models.load_model(tmp_path / "model.keras").predict({"numeric": x}, verbose=0)["a"]
    np.testing.assert_allclose(float(np.sum(reloaded)), first["checksum"], rtol=1e-4)
    assert seconds < 240


@JAX
def test_a_process_that_cannot_reach_the_coordinator_fails_naming_the_address():
    code = ("import os\nos.environ.update(KERAS_DISTRIBUTION_JOB_ADDRESSES='127.0.0.1:9', "
            "KERAS_DISTRIBUTION_NUM_PROCESSES='2', KERAS_DISTRIBUTION_PROCESS_ID='1')\n"
            "from mtrec.training.distribution import initialize_processes\ninitialize_processes(timeout_s=5)")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "could not join the coordinator at 127.0.0.1:9 within 5 s" in done.stderr, done.stderr[-3000:]


def test_process_shares_are_equal_and_disjoint():
    from mtrec.training.distribution import local_rows

    shares = [local_rows(10, i, 3) for i in range(3)]
    assert [(s.start, s.stop) for s in shares] == [(0, 3), (3, 6), (6, 9)]


def test_several_processes_on_tensorflow_are_refused(monkeypatch):
    from mtrec.training.distribution import initialize_processes

    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    with pytest.raises(ConfigError, match="jax backend only.*KERAS_BACKEND=jax"):
        initialize_processes()


def test_masked_losses_are_averaged_not_summed_over_replicas():
    # Keras divides a reduced loss by the number of replicas; a loss that returned a scalar skipped
    # that, so two devices doubled the gradients (and the logged loss). With SGD on labels whose
    # missing values fall evenly, one device and two must train alike.
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "tests/masked_loss_replicas.py"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    one, mirrored = runs["one"], runs["mirrored"]
    assert one["loss"][1] < one["loss"][0]
    # Per-replica masked means are averaged, so uneven missing labels move them a little, not 2x.
    np.testing.assert_allclose(mirrored["loss"], one["loss"], rtol=0.05)
    np.testing.assert_allclose(mirrored["kernel"], one["kernel"], rtol=0.05)

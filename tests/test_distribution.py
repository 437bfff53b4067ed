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


def _launch(tmp_path, argv, timeout_s=420):
    """`launch_processes(2, argv)` on CPU; returns (status, {rank: [lines]})."""
    import io

    from mtrec.training.launch import launch_processes

    out = io.StringIO()
    codes, status = launch_processes(2, argv, cwd=str(REPO), timeout_s=timeout_s, out=out,
                                     env={"JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": ""})
    lines: dict[int, list[str]] = {0: [], 1: []}
    for line in out.getvalue().splitlines():
        rank, _, text = line.partition("] ")
        lines[int(rank.lstrip("["))].append(text)
    return status, lines


@JAX
def test_mtrec_launch_trains_two_processes_and_process_0_alone_writes_a_run_that_reloads(tmp_path):
    import time

    from mtrec.training.trained_run import load_run

    run_dir = tmp_path / "run"
    started = time.monotonic()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": ""}
    done = subprocess.run([sys.executable, "-m", "mtrec.cli", "launch", "-n", "2", "--", "train", "-c",
                           "configs/quickstart.yaml", "--run-dir", str(run_dir), "data.synthetic.n_rows=600",
                           "training.epochs=2", "training.verbose=2"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    seconds = time.monotonic() - started
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    # Every child's line carries its rank.
    inner = {r: [t[4:] for t in done.stdout.splitlines() if t.startswith(f"[{r}] ")] for r in (0, 1)}
    # One model: both processes log the same (all-reduced) losses.
    epoch_logs = {r: [t for t in inner[r] if " - loss: " in t] for r in (0, 1)}
    assert len(epoch_logs[0]) == 2
    assert [t.split(" - loss: ")[1] for t in epoch_logs[0]] == [t.split(" - loss: ")[1] for t in epoch_logs[1]]
    assert "Done; process 0 writes the run directory" in "\n".join(inner[1])
    # Process 0 alone wrote the run directory; no other process wrote under it.
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "features.json", "model.keras", "metrics.json", "report.json", "run.json"} <= names
    assert not any("process" in n for n in names)
    history = json.loads((run_dir / "metrics.json").read_text())
    assert history[-1]["train"]["total"]["loss"] < history[0]["train"]["total"]["loss"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["backend"] == "jax"
    assert "mirrored" in (run_dir / "config.yaml").read_text()
    # The model reloads (here on TensorFlow) and reproduces its report's test metrics.
    from mtrec.training.predict import predict_arrays
    from mtrec.training.prepare import prepare

    loaded = load_run(run_dir)
    report = json.loads((run_dir / "report.json").read_text())
    test = prepare(loaded.config).splits["test"]
    predicted = predict_arrays(loaded.model, test.features, 256)
    for task in ("y0", "y1"):
        rmse = float(np.sqrt(np.mean((predicted[task].ravel() - test.labels[task].ravel()) ** 2)))
        assert rmse == pytest.approx(report["test"][task]["rmse"], rel=1e-4)
    print(f"2-process launch: {seconds:.0f} s wall")


@JAX
def test_two_processes_stream_their_own_parts_of_a_prepared_folder(tmp_path):
    # Streamed from prepared shards, each process reads only its half of every split, in batches
    # of half the global batch; Keras assembles the global batch from the two halves.
    import yaml

    from mtrec.data.io import write_parquet
    from mtrec.preparation import prepare as prepare_shards
    from mtrec.training.trained_run import load_run
    from tests.test_streamed_training import make_config, make_table

    write_parquet(make_table(3000), tmp_path / "table.parquet")
    config = make_config(tmp_path / "table.parquet", epochs=2, verbose=2)
    prepare_shards(config, tmp_path / "prepared", batch_size=500, shard_batches=1)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config.get_config(), sort_keys=False))
    run_dir = tmp_path / "run"
    status, lines = _launch(tmp_path, ["-m", "mtrec.cli", "train", "-c", str(tmp_path / "config.yaml"),
                                       "--run-dir", str(run_dir), f"data.prepared={tmp_path / 'prepared'}",
                                       "training.in_memory=false"], timeout_s=300)
    assert status == 0, lines
    epoch_logs = {r: [t.split(" - loss: ")[1] for t in lines[r] if " - loss: " in t] for r in (0, 1)}
    assert len(epoch_logs[0]) == 2 and epoch_logs[0] == epoch_logs[1]  # one model, all-reduced
    history = json.loads((run_dir / "metrics.json").read_text())
    assert history[-1]["train"]["total"]["loss"] < history[0]["train"]["total"]["loss"]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["test"]["click"]["auc"] > 0.75, report["test"]  # the table's click is learnable (~0.84)
    loaded = load_run(run_dir)
    assert loaded.model.count_params() == report["model"]["parameters"]


@JAX
def test_a_process_local_input_is_fed_as_it_is(monkeypatch):
    # ProcessDataParallel cuts this process's share out of a global batch, unless the input holds
    # this process's rows already (streamed parts, marked by process_local).
    import jax
    import tensorflow as tf

    from mtrec.training import distribution

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    monkeypatch.setattr(jax, "local_device_count", lambda: 1)
    data = tf.data.Dataset.from_tensor_slices(np.arange(8.0)).batch(4)
    parallel = distribution.ProcessDataParallel.__new__(distribution.ProcessDataParallel)
    cut = [b.tolist() for b in parallel.distribute_dataset(data).as_numpy_iterator()]
    assert cut == [[2.0, 3.0], [6.0, 7.0]]
    local = distribution.process_local(tf.data.Dataset.from_tensor_slices(np.arange(8.0)).batch(4))
    assert parallel.distribute_dataset(local) is local


@JAX
def test_processes_with_different_configs_are_refused_at_start_up(tmp_path):
    status, lines = _launch(tmp_path, ["tests/multiprocess_run.py", "1", str(tmp_path / "run")], timeout_s=240)
    assert status == 0, lines
    out = {r: json.loads(next(t for t in lines[r] if t.startswith('{"process"'))) for r in (0, 1)}
    for r in (0, 1):  # every process refuses, naming the one that differs
        assert "started with different configs: process(es) [1] differ from process 0" in out[r]["error"]


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


def test_mtrec_launch_needs_a_train_command_after_the_separator():
    from mtrec.training.launch import launch

    with pytest.raises(ConfigError, match="needs the command to run after '--'"):
        launch(2, ["--"])
    with pytest.raises(ConfigError, match="runs 'train' across processes. Received: 'score'"):
        launch(2, ["--", "score", "runs/x", "a.parquet", "b.parquet"])


@JAX
def test_across_processes_a_last_batch_too_small_to_share_is_refused(monkeypatch):
    import jax

    from mtrec.training import distribution

    monkeypatch.setattr(distribution.keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(distribution, "num_replicas", lambda strategy: 2)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    distribution.check_batch_sizes("mirrored", 1202, 100)  # a last batch of 2 rows: one per process
    with pytest.raises(ConfigError, match="across 2 processes.*batches of 100 and 1 rows.*at least 2 rows"):
        distribution.check_batch_sizes("mirrored", 1201, 100)
    with pytest.raises(ConfigError, match="training.batch_size=99"):
        distribution.check_batch_sizes("mirrored", 1200, 99)

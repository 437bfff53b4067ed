"""`model.ensemble: k`: k seeds fit as single runs, their mean saved as the run's one model.keras."""

import copy
import os
import shutil
import types

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mtrec.config import parse_config
from mtrec.errors import ConfigError
from mtrec.export import export_run, request_columns
from mtrec.models import SeedEnsemble
from mtrec.scoring.score import score_frame
from mtrec.training.ensemble import _members_dir, check_ensemble
from mtrec.training.predict import predict_arrays
from mtrec.training.run import train
from mtrec.training.trained_run import load_model_file, load_run

CONFIG = {
    "name": "ensemble_test",
    "seed": 3,
    "features": [
        {"name": "item", "kind": "categorical", "embedding_dim": 4},
        {"name": "age", "kind": "numeric"},
        {"name": "score", "kind": "numeric"},
    ],
    "tasks": [{"name": "click", "kind": "binary"}, {"name": "rating", "kind": "regression"},
              {"name": "segment", "kind": "multiclass", "num_classes": 3}],
    "model": {"kind": "mmoe", "num_experts": 2, "expert": {"units": [8]}, "tower_units": [4], "ensemble": 3},
    "training": {"epochs": 2, "batch_size": 256, "verbose": 0, "early_stopping": {"patience": 1}},
}


def make_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    item, age, score = rng.integers(0, 30, n), rng.normal(40, 12, n), rng.normal(0, 1, n)
    z = 0.05 * (age - 40) + score + (item % 3 == 0)
    return pd.DataFrame({"item": item, "age": age, "score": score,
                         "click": (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int),
                         "rating": 3 * z + rng.normal(0, 1, n), "segment": (item + (score > 0)) % 3})


def test_config_round_trip_and_refusals(monkeypatch):
    config = parse_config(CONFIG)
    assert config.model.ensemble == 3 and "ensemble" not in config.model.params  # not a constructor argument
    again = parse_config(config.get_config())
    assert again.model.ensemble == 3 and again.get_config() == config.get_config()
    single = parse_config({**CONFIG, "model": {k: v for k, v in CONFIG["model"].items() if k != "ensemble"}})
    assert single.model.ensemble == 1 and "ensemble" not in single.get_config()["model"]
    for bad in (0, -2):
        with pytest.raises(ConfigError, match=r"'model.ensemble' must be an integer >= 1. Received: " + str(bad)):
            parse_config({**CONFIG, "model": {**CONFIG["model"], "ensemble": bad}})
    with pytest.raises(ConfigError, match="model.ensemble"):
        parse_config({**CONFIG, "model": {**CONFIG["model"], "ensemble": "three"}})
    with pytest.raises(ConfigError, match="streams encoded shards"):
        check_ensemble(config, types.SimpleNamespace(shards=object()))
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    with pytest.raises(ConfigError, match="KERAS_DISTRIBUTION_NUM_PROCESSES is 2"):
        check_ensemble(config, types.SimpleNamespace(shards=None))


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    frame = make_frame(1000, seed=0)
    result = train(parse_config(CONFIG), root / "run", frame=frame)
    return result, root, frame


def test_predictions_are_the_mean_of_the_members(ensemble_run):
    result, root, _ = ensemble_run
    assert isinstance(result.model, SeedEnsemble) and len(result.model.members) == 3
    features = result.prepared.splits["test"].features
    predicted = predict_arrays(result.model, features)
    members = [load_model_file(root / "run" / "members" / f"member_{i}" / "model.keras") for i in range(3)]
    each = [predict_arrays(m, features) for m in members]
    for task in ("click", "rating", "segment"):
        np.testing.assert_allclose(predicted[task], np.mean([p[task] for p in each], axis=0), rtol=1e-5, atol=1e-6)
        # The seeds give different members, so the mean is not any one of them.
        assert np.abs(each[0][task] - each[1][task]).max() > 1e-3
    np.testing.assert_allclose(predicted["segment"].sum(axis=1), 1.0, atol=1e-5)  # still probabilities
    # Each member is what a single run with its seed fits.
    single = copy.deepcopy(CONFIG)
    single["seed"] = CONFIG["seed"] + 1
    del single["model"]["ensemble"]
    alone = train(parse_config(single), root / "single", frame=make_frame(1000, seed=0))
    for task, value in predict_arrays(alone.model, features).items():
        np.testing.assert_allclose(value, each[1][task], rtol=1e-5, atol=1e-6)
    # The report scores the ensemble; metrics.json lives with each member.
    assert (root / "run" / "members" / "member_2" / "metrics.json").exists()
    assert result.report["model"]["parameters"] == sum(m.count_params() for m in members)


def test_model_file_reloads_and_export_matches_scoring(ensemble_run, tmp_path):
    result, root, frame = ensemble_run
    run = load_run(root / "run")
    assert isinstance(run.model, SeedEnsemble) and run.model.task_names == ["click", "rating", "segment"]
    features = result.prepared.splits["test"].features
    for task, value in predict_arrays(run.model, features).items():
        np.testing.assert_array_equal(value, predict_arrays(result.model, features)[task])
    rows = make_frame(300, seed=7)
    reference = score_frame(run, rows)
    export_run(run, tmp_path / "export", gates=True)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    inputs = request_columns(rows, run.encoder)
    out = {k: v.numpy() for k, v in loaded.signatures["serving_default"](
        **{k: tf.constant(v) for k, v in inputs.items()}).items()}
    np.testing.assert_allclose(out["click"], reference["click"].to_numpy(), atol=1e-5)
    np.testing.assert_allclose(out["rating"], reference["rating"].to_numpy(), atol=1e-4)
    np.testing.assert_array_equal(out["segment"], reference["segment"].to_numpy())
    np.testing.assert_allclose(out["segment_proba"], np.stack(reference["segment_proba"].to_numpy()), atol=1e-5)
    # Gates are the first member's (experts of different seeds do not correspond).
    encoded = run.encoder.transform(rows)
    gates = run.model.gate_weights(encoded)
    np.testing.assert_allclose(out["gate_click"], gates["click"], atol=1e-5)
    np.testing.assert_array_equal(gates["click"], run.model.members[0].gate_weights(encoded)["click"])


def test_rerun_skips_finished_members(ensemble_run, tmp_path):
    result, root, frame = ensemble_run
    # An interrupted run (a copy of the finished one): the last member and the final files missing.
    shutil.copytree(root / "run", tmp_path / "run")
    for name in ("members/member_2/model.keras", "report.json", "model.keras"):
        (tmp_path / "run" / name).unlink()
    member = tmp_path / "run" / "members" / "member_0" / "model.keras"
    stamp = os.stat(member).st_mtime_ns
    again = train(parse_config(CONFIG), tmp_path / "run", frame=frame)
    assert os.stat(member).st_mtime_ns == stamp  # reloaded, not refit
    assert (tmp_path / "run" / "members" / "member_2" / "model.keras").exists()
    assert again.report["test"] == result.report["test"]  # the refit member is the same fit
    # Another config (or --overwrite) fits every member afresh.
    same = (tmp_path / "run" / "config.yaml").read_text()
    _members_dir(same, tmp_path / "run", overwrite=False)
    assert member.exists()
    _members_dir(same, tmp_path / "run", overwrite=True)
    assert not member.exists()
    shutil.copytree(root / "run" / "members", tmp_path / "run" / "members", dirs_exist_ok=True)
    _members_dir(same.replace("seed: 3", "seed: 4"), tmp_path / "run", overwrite=False)
    assert not member.exists()

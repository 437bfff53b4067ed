"""Retrieval: the Keras 2 isolation, the BruteForce index, the two-tower training and `mtrec retrieve`."""

import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mtrec.errors import ConfigError, KerasVersionError
from mtrec.retrieval import CandidateIndex, RetrievalConfig, TowerFeature, parse_retrieval_config, train_retrieval
from mtrec.retrieval.legacy import ENV_VAR, run_legacy_module

from conftest import REPO


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def test_importing_mtrec_sets_no_legacy_keras_and_loads_no_tf_keras():
    code = (
        "import os, sys\n"
        "import mtrec, mtrec.retrieval, mtrec.recommend, mtrec.cli\n"
        "mtrec.cli.build_parser()\n"
        f"assert '{ENV_VAR}' not in os.environ, 'the variable was set'\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tf_keras', 'tensorflow_recommenders'))\n"
        "assert not bad, bad\n"
        "print('clean')\n")
    done = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "clean" in done.stdout


@pytest.mark.parametrize("module", ["mtrec.retrieval.two_tower", "mtrec.retrieval.export"])
def test_tfrs_modules_refuse_a_keras3_process_and_say_how_to_run(module, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(KerasVersionError, match="mtrec retrieval-train -c CONFIG.yaml") as info:
        importlib.import_module(module)
    assert isinstance(info.value, ImportError)
    assert module not in sys.modules


def test_retrieval_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="query_features must include the id column 'user_id'"):
        parse_retrieval_config({"query_features": [{"name": "age", "kind": "numeric"}]})
    with pytest.raises(ConfigError, match="retrieval.embeding_dim.*Did you mean 'embedding_dim'"):
        parse_retrieval_config({"embeding_dim": 8})
    with pytest.raises(ConfigError, match="retrieval.query_features\\[0\\].kind"):
        parse_retrieval_config({"query_features": [{"name": "user_id", "kind": "text"}]})
    with pytest.raises(ConfigError, match="retrieval.temperature must be > 0"):
        parse_retrieval_config({"temperature": 0})
    with pytest.raises(ConfigError, match="both 0"):
        parse_retrieval_config({"rating_weight": 0, "retrieval_weight": 0})


def test_bruteforce_index_returns_the_known_nearest_items(tmp_path):
    import tensorflow as tf

    # Eight items on the unit circle, queries pointing between them: the nearest items by dot
    # product are known from the angles alone.
    angles = np.arange(8) * np.pi / 4
    items = pd.DataFrame({"item_id": [f"item{i}" for i in range(8)],
                          "embedding": list(np.stack([np.cos(angles), np.sin(angles)], 1).astype("float32"))})
    items.to_parquet(tmp_path / "embeddings.parquet")
    run_legacy_module("mtrec.retrieval.runner", ["index", "--embeddings", tmp_path / "embeddings.parquet",
                                                  "--out", tmp_path / "toy", "--k", "3"], quiet=True)
    serve = tf.saved_model.load(str(tmp_path / "toy" / "index")).signatures["serving_default"]
    query_angles = np.array([0.1, np.pi / 2 + 0.1, np.pi - 0.3])  # just past item0, item2; before item4
    queries = np.stack([np.cos(query_angles), np.sin(query_angles)], 1).astype("float32")
    result = serve(queries=tf.constant(queries), k=tf.constant(3))
    ids = result["ids"].numpy().astype(str)
    assert ids[:, 0].tolist() == ["item0", "item2", "item4"]
    assert ids[:, 1].tolist() == ["item1", "item3", "item3"]
    expected = np.sort(queries @ np.stack(items["embedding"]).T, axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(result["scores"].numpy(), expected, rtol=1e-5, atol=1e-6)
    # k larger than the catalogue is capped, not an error.
    assert serve(queries=tf.constant(queries), k=tf.constant(50))["ids"].shape == (3, 8)


def _clustered_interactions(seed: int = 0):
    """Two user groups, each interacting only with its own half of the items."""
    rng = np.random.default_rng(seed)
    users = pd.DataFrame({"user_id": np.arange(1, 41), "age": rng.integers(18, 70, 40).astype(float),
                          "occupation": rng.choice(["a", "b", "c"], 40)})
    items = pd.DataFrame({"item_id": np.arange(101, 131),
                          "genres": ["x|y" if i < 15 else "z" for i in range(30)]})
    group = (users["user_id"] > 20).to_numpy()
    rows = []
    for user, in_b in zip(users["user_id"], group):
        pool = items["item_id"].to_numpy()[15:] if in_b else items["item_id"].to_numpy()[:15]
        for item in rng.choice(pool, 10, replace=False):
            rows.append((user, item, float(rng.integers(1, 6))))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    interactions = interactions.merge(users, on="user_id").merge(items, on="item_id")
    return interactions, users, items


CONFIG = RetrievalConfig(
    query_features=[TowerFeature("user_id"), TowerFeature("age", "numeric"), TowerFeature("occupation")],
    candidate_features=[TowerFeature("item_id"), TowerFeature("genres", "multi_categorical")],
    query_layers=[16], embedding_dim=8, epochs=25, batch_size=64, optimizer="adam", learning_rate=0.02,
    rating_layers=[8], k=5, top_ks=[1, 5], remove_accidental_hits=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    interactions, users, items = _clustered_interactions()
    out = tmp_path_factory.mktemp("retrieval") / "retrieval"
    metrics = train_retrieval(CONFIG, interactions, items, out, test=interactions.iloc[:50], verbose=0, quiet=True)
    return out, metrics, interactions, users


def test_training_writes_towers_index_and_metrics(trained):
    out, metrics, interactions, _ = trained
    for name in ("query_tower", "candidate_tower", "index", "towers.json", "retrieval.json", "metrics.json",
                 "users.parquet", "seen.parquet", "items.parquet"):
        assert (out / name).exists(), name
    assert metrics["rows"]["train"] == len(interactions)
    assert 0 <= metrics["test"]["top_5_accuracy"] <= 1 and metrics["test"]["rmse"] > 0
    losses = metrics["history"]["loss"]
    assert losses[-1] < losses[0]


def test_candidates_follow_the_learned_groups_and_skip_seen_items(trained):
    import tensorflow as tf

    out, _, interactions, users = trained
    index = CandidateIndex.load(out)
    candidates = index.query(users[["user_id"]], k=5)
    assert list(candidates.columns) == ["user_id", "rank", "item_id", "retrieval_score"]
    assert candidates.groupby("user_id").size().eq(5).all()
    assert candidates["rank"].tolist() == list(range(1, 6)) * len(users)
    assert candidates["item_id"].dtype == np.int64
    seen = set(zip(interactions["user_id"], interactions["item_id"]))
    assert not any(pair in seen for pair in zip(candidates["user_id"], candidates["item_id"]))
    # Scores descend within a user.
    assert (candidates.groupby("user_id")["retrieval_score"].diff().dropna() <= 1e-6).all()
    # Users of group B (id > 20) should be offered group B items (id > 115), and vice versa.
    same_group = (candidates["user_id"] > 20) == (candidates["item_id"] > 115)
    assert same_group.mean() > 0.8, same_group.mean()
    # The index scores are the dot products of the two saved towers.
    query = tf.saved_model.load(str(out / "query_tower")).signatures["serving_default"]
    candidate = tf.saved_model.load(str(out / "candidate_tower")).signatures["serving_default"]
    user = users.iloc[[0]]
    q = query(user_id=tf.constant(["1"]), age=tf.constant(user["age"].to_numpy("float32")),
              occupation=tf.constant(user["occupation"].to_numpy().astype(bytes)))["embedding"].numpy()
    first = candidates[candidates["user_id"] == 1]
    genres = ["x|y" if i < 116 else "z" for i in first["item_id"]]
    c = candidate(item_id=tf.constant(first["item_id"].astype(str).to_numpy().astype(bytes)),
                  genres=tf.constant(np.array(genres).astype(bytes)))["embedding"].numpy()
    np.testing.assert_allclose((q @ c.T).ravel(), first["retrieval_score"], rtol=1e-4, atol=1e-5)


def test_unknown_users_still_get_candidates(trained):
    out, *_ = trained
    index = CandidateIndex.load(out)
    cold = index.query(pd.DataFrame({"user_id": [999], "age": [30.0], "occupation": ["a"]}), k=4)
    assert len(cold) == 4 and cold["user_id"].eq(999).all()
    # Features the table lacks come from the training users (user 3 has an age and occupation).
    assert len(index.query(pd.DataFrame({"user_id": [3]}), k=30, exclude_seen=False)) == 30


def test_retrieve_command_writes_candidates_per_user(trained, tmp_path):
    from mtrec.cli import main

    out, _, _, users = trained
    users[["user_id"]].head(7).to_parquet(tmp_path / "users.parquet")
    assert main(["retrieve", str(out), "--users", str(tmp_path / "users.parquet"), "--k", "3",
                 "--no-progress", str(tmp_path / "candidates.parquet")]) == 0
    written = pd.read_parquet(tmp_path / "candidates.parquet")
    assert len(written) == 21 and written["user_id"].nunique() == 7
    assert main(["retrieve", str(tmp_path), "--users", str(tmp_path / "users.parquet"),
                 str(tmp_path / "x.parquet")]) == 2  # not a retrieval directory: a clear error, exit 2
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"usr": [1]}).to_parquet(bad)
    assert main(["retrieve", str(out), "--users", str(bad), str(tmp_path / "y.parquet")]) == 2
    json.loads((out / "retrieval.json").read_text())  # the config is readable JSON


def test_seen_items_outside_the_catalogue_do_not_hide_another_users_item():
    from mtrec.retrieval.index import seen_pair_codes

    # User 1 saw an item missing from the 3-item catalogue (code -1); user 0 saw item 0.
    codes = seen_pair_codes(np.array([0, 1, 1]), np.array([0, -1, 1]), 3)
    assert codes.tolist() == [0, 4]  # (0, 0) and (1, 1); not 2, which is user 0's item 2

"""Recommendations: blend, top N, ranking metrics, holdout, ranking rows, and the recommend job end to end."""

import json

import numpy as np
import pandas as pd
import pytest

from mtrec.errors import ConfigError, SchemaError
from mtrec.recommend import Blend, BlendConfig, parse_recommend_config, ranking_metrics, recommend, top_n
from mtrec.recommend.config import HoldoutConfig, NegativesConfig, RecommendDataConfig, load_recommend_config
from mtrec.recommend.interactions import Tables, holdout_split
from mtrec.recommend.ranking import ranking_rows

from conftest import REPO


# --------------------------------------------------------------------------- blend


def _scores():
    # Item a: sure click, unlikely like; b: balanced; c: unlikely click, sure like.
    return pd.DataFrame({"user_id": [1, 1, 1], "item_id": ["a", "b", "c"],
                         "click": [0.9, 0.6, 0.2], "like_conditional": [0.1, 0.5, 0.95],
                         "rating": [2.0, 3.5, 4.8]})


def test_blend_product_and_sum_order_items_as_specified():
    scores = _scores()
    product = Blend(BlendConfig("product", {"click": 1.0, "like_conditional": 1.0}))(scores)
    np.testing.assert_allclose(product, [0.9 * 0.1, 0.6 * 0.5, 0.2 * 0.95])
    assert top_n(scores.assign(score=product), "user_id", "score", 3)["item_id"].tolist() == ["b", "c", "a"]

    clicks_only = Blend(BlendConfig("sum", {"click": 1.0}))(scores)
    assert top_n(scores.assign(score=clicks_only), "user_id", "score", 3)["item_id"].tolist() == ["a", "b", "c"]

    # Weighted sum: 2 * like + 0.1 * rating puts the liked item first.
    weighted = Blend(BlendConfig("sum", {"like_conditional": 2.0, "rating": 0.1}))(scores)
    np.testing.assert_allclose(weighted, [2 * 0.1 + 0.2, 2 * 0.5 + 0.35, 2 * 0.95 + 0.48])
    ranked = top_n(scores.assign(score=weighted), "user_id", "score", 2)
    assert ranked["item_id"].tolist() == ["c", "b"] and ranked["rank"].tolist() == [1, 2]

    # A weight of 2 in a product squares the score: like dominates.
    squared = Blend(BlendConfig("product", {"click": 1.0, "like_conditional": 2.0}))(scores)
    np.testing.assert_allclose(squared, [0.9 * 0.01, 0.6 * 0.25, 0.2 * 0.9025])


def test_blend_errors():
    with pytest.raises(SchemaError, match="'clik'.*Did you mean 'click'"):
        Blend(BlendConfig("sum", {"clik": 1.0}))(_scores())
    with pytest.raises(ConfigError, match="blend.weights.click must be >= 0"):
        BlendConfig("sum", {"click": -1.0})
    with pytest.raises(ConfigError, match="at least one"):
        BlendConfig("sum", {})


def test_top_n_ranks_per_user():
    frame = pd.DataFrame({"u": [2, 1, 1, 2, 1], "item": [1, 2, 3, 4, 5], "s": [0.1, 0.5, 0.9, 0.7, 0.2]})
    best = top_n(frame, "u", "s", 2)
    assert best[["u", "item", "rank"]].values.tolist() == [[1, 3, 1], [1, 2, 2], [2, 4, 1], [2, 1, 2]]


# --------------------------------------------------------------------------- metrics


def test_ranking_metrics_match_a_hand_computation():
    recommended = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 2],
                                "item_id": [10, 11, 12, 20, 21, 22], "rank": [1, 2, 3, 1, 2, 3]})
    # User 1: relevant {11, 12, 13}: hits at ranks 2 and 3. User 2: relevant {99}: no hit.
    relevant = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [11, 12, 13, 99]})
    got = ranking_metrics(recommended, relevant, n=3)
    dcg1 = 1 / np.log2(3) + 1 / np.log2(4)
    idcg1 = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert got["users"] == 2
    assert got["recall"] == pytest.approx((2 / 3 + 0) / 2)
    assert got["ndcg"] == pytest.approx((dcg1 / idcg1 + 0) / 2)
    assert got["mrr"] == pytest.approx((1 / 2 + 0) / 2)
    # At N = 2 only rank 2 counts; the ideal DCG has min(3, 2) = 2 hits.
    got2 = ranking_metrics(recommended, relevant, n=2)
    assert got2["recall"] == pytest.approx(1 / 3 / 2)
    assert got2["ndcg"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)) / 2)


def test_ndcg_agrees_with_keras_rs_when_every_relevant_item_is_listed():
    keras_rs = pytest.importorskip("keras_rs")
    rng = np.random.default_rng(0)
    labels = (rng.random((6, 8)) < 0.3).astype("float32")
    labels[:, 0] = 1.0  # every list has a relevant item
    scores = rng.random((6, 8)).astype("float32")
    metric = keras_rs.metrics.NDCG(k=8)
    metric.update_state(labels, scores)
    order = np.argsort(-scores, axis=1)
    rows = [(u, int(i), r + 1) for u in range(6) for r, i in enumerate(order[u])]
    recommended = pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])
    users, items = np.nonzero(labels)
    relevant = pd.DataFrame({"user_id": users, "item_id": items})
    ours = ranking_metrics(recommended, relevant, n=8)["ndcg"]
    assert ours == pytest.approx(float(metric.result()), rel=1e-5)


# --------------------------------------------------------------------------- holdout and negatives


def test_user_time_holdout_keeps_each_users_latest_interactions():
    frame = pd.DataFrame({"user_id": [1] * 10 + [2] * 3 + [3],
                          "item_id": range(14), "timestamp": list(range(10, 0, -1)) + [5, 6, 7] + [1]})
    train, held = holdout_split(frame, HoldoutConfig("user_time", 0.2))
    # ceil(0.2 * 10) = 2 latest of user 1 (timestamps 10, 9), ceil(0.6) = 1 of user 2, none of user 3.
    assert sorted(held["item_id"]) == [0, 1, 12]
    assert len(train) + len(held) == len(frame) and 13 in set(train["item_id"])
    assert set(train["item_id"]).isdisjoint(held["item_id"])


def test_ranking_rows_label_negatives_for_the_three_tasks():
    data = RecommendDataConfig(dataset=None, interactions="-", users="-", items="-")
    train = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10], "rating": [5.0, 2.0, 4.0],
                          "like": [1, 0, 1]})
    candidates = pd.DataFrame({"user_id": [1] * 4 + [2] * 4, "item_id": [12, 13, 14, 11, 11, 12, 13, 14],
                               "rank": [1, 2, 3, 4] * 2})
    rows = ranking_rows(train, candidates, NegativesConfig(rate=1.0, k=3), data)
    positives, negatives = rows[rows["click"] == 1], rows[rows["click"] == 0]
    assert len(positives) == 3 and positives["rating"].notna().all()
    # rate 1 keeps every candidate in the top k = 3: (1: 12, 13, 14), (2: 11, 12, 13).
    assert sorted(zip(negatives["user_id"], negatives["item_id"])) == [(1, 12), (1, 13), (1, 14),
                                                                      (2, 11), (2, 12), (2, 13)]
    assert negatives["rating"].isna().all() and (negatives["like"] == 0).all()
    half = ranking_rows(train, pd.concat([candidates] * 200), NegativesConfig(rate=0.25, k=3), data)
    assert 0.2 < (half["click"] == 0).sum() / (6 * 200) < 0.3


# --------------------------------------------------------------------------- config


def test_movielens_config_parses_and_bad_keys_are_named():
    config = load_recommend_config(REPO / "configs" / "recommend_movielens.yaml")
    assert config.ranking.model.kind == "mmoe" and config.output.n == 10
    assert {"user_id", "item_id"} <= set(config.ranking.data.id_columns)
    raw = {"ranking": {"features": [{"name": "x", "kind": "numeric"}],
                       "tasks": [{"name": "click", "kind": "binary"}], "model": {"kind": "mmoe"}}}
    with pytest.raises(ConfigError, match="blend.weights names 'like'.*Score columns.*click"):
        parse_recommend_config(raw)
    with pytest.raises(ConfigError, match="output.n \\(20\\) must not exceed output.k \\(10\\)"):
        parse_recommend_config({**raw, "blend": {"weights": {"click": 1}}, "output": {"k": 10, "n": 20}})
    with pytest.raises(ConfigError, match="In section 'ranking'.*model.kind"):
        parse_recommend_config({"ranking": {**raw["ranking"], "model": {"kind": "mmo"}}})
    with pytest.raises(ConfigError, match="Unknown config key 'blnd'"):
        parse_recommend_config({**raw, "blnd": {}})


# --------------------------------------------------------------------------- end to end


def _tables(seed: int = 0) -> Tables:
    """40 users in two taste groups over 30 items, plus user 99 with no interactions at all."""
    rng = np.random.default_rng(seed)
    users = pd.DataFrame({"user_id": [*range(1, 41), 99], "age": rng.integers(18, 70, 41).astype(float)})
    items = pd.DataFrame({"item_id": np.arange(101, 131),
                          "genres": ["x|y" if i < 15 else "z" for i in range(30)]})
    rows = []
    for user in range(1, 41):
        pool = np.arange(116, 131) if user > 20 else np.arange(101, 116)
        for t, item in enumerate(rng.choice(pool, 12, replace=False)):
            liked = rng.random() < (0.8 if item % 2 else 0.3)
            rows.append((user, item, float(rng.integers(4, 6) if liked else rng.integers(1, 4)), t))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Tables(interactions, users, items)


E2E = {
    "name": "tiny",
    "data": {"dataset": None, "interactions": "-", "users": "-", "items": "-",
             "holdout": {"kind": "user_time", "fraction": 0.25}},
    "retrieval": {"query_features": [{"name": "user_id"}, {"name": "age", "kind": "numeric"}],
                  "candidate_features": [{"name": "item_id"}, {"name": "genres", "kind": "multi_categorical"}],
                  "query_layers": [8], "embedding_dim": 8, "epochs": 15, "batch_size": 64,
                  "optimizer": "adam", "learning_rate": 0.02, "rating_layers": [8], "top_ks": [5]},
    "negatives": {"rate": 0.5, "k": 10},
    "ranking": {
        "data": {"split": {"kind": "random", "fractions": [0.8, 0.2, 0.0]}},
        "features": [{"name": "user_id", "kind": "categorical", "embedding_dim": 4},
                     {"name": "item_id", "kind": "categorical", "embedding_dim": 4},
                     {"name": "age", "kind": "numeric"},
                     {"name": "genres", "kind": "multi_categorical", "separator": "|"}],
        "tasks": [{"name": "click", "kind": "binary"}, {"name": "rating", "kind": "regression"},
                  {"name": "like", "kind": "binary", "after": "click"}],
        "model": {"kind": "mmoe", "num_experts": 2, "expert": {"units": [8]}, "tower_units": [4]},
        "training": {"epochs": 3, "batch_size": 64, "learning_rate": 0.01, "early_stopping": None,
                     "steps_per_execution": 1},
    },
    "blend": {"kind": "product", "weights": {"click": 1.0, "like_conditional": 1.0}},
    "output": {"k": 10, "n": 4, "batch_users": 16},
    "evaluation": {"ns": [4], "relevance": ["click", "like"]},
}


@pytest.fixture(scope="module")
def recommend_run(tmp_path_factory):
    tables = _tables()
    run_dir = tmp_path_factory.mktemp("recommend")
    result = recommend(parse_recommend_config(E2E), run_dir, tables=tables, progress=False, verbose=0)
    return result, tables


def test_recommendations_schema_and_row_counts(recommend_run):
    result, tables = recommend_run
    recs = pd.read_parquet(result.run_dir / "recommendations.parquet")
    assert list(recs.columns[:9]) == ["user_id", "rank", "item_id", "click", "rating", "like",
                                      "like_conditional", "score", "retrieval_score"]
    assert {"retrieval_rank", "source", "gate_click_expert", "gate_click_weight", "gate_like_weight"} <= set(recs)
    assert len(recs) == 41 * 4 and recs.groupby("user_id").size().eq(4).all()
    assert recs["rank"].tolist() == [1, 2, 3, 4] * 41
    # Within a user the blended score descends, and it is the configured product.
    assert (recs.groupby("user_id")["score"].diff().dropna() <= 1e-9).all()
    np.testing.assert_allclose(recs["score"], recs["click"] * recs["like_conditional"], rtol=1e-5)
    np.testing.assert_allclose(recs["like"], recs["click"] * recs["like_conditional"], rtol=1e-4, atol=1e-6)
    assert recs["gate_click_weight"].between(0.5, 1.0).all()  # the largest of 2 gate weights
    # No user is recommended an item from its own training interactions.
    train, _ = holdout_split(tables.interactions, HoldoutConfig("user_time", 0.25))
    seen = set(zip(train["user_id"], train["item_id"]))
    assert not any(pair in seen for pair in zip(recs["user_id"], recs["item_id"]))


def test_user_without_history_gets_popular_items(recommend_run):
    result, tables = recommend_run
    recs = result.recommendations
    cold = recs[recs["user_id"] == 99]
    assert len(cold) == 4 and (cold["source"] == "popularity").all() and cold["retrieval_score"].isna().all()
    assert (recs.loc[recs["user_id"] != 99, "source"] == "retrieval").all()
    train, _ = holdout_split(tables.interactions, HoldoutConfig("user_time", 0.25))
    top10 = train["item_id"].value_counts().sort_index().sort_values(ascending=False, kind="stable").index[:10]
    assert set(cold["item_id"]) <= set(top10)


def test_evaluation_report_compares_retrieval_with_ranking(recommend_run):
    result, _ = recommend_run
    report = json.loads((result.run_dir / "evaluation.json").read_text())
    lists = {(r["relevance"], r["lists"]) for r in report["results"]}
    assert lists == {(rel, name) for rel in ("click", "like") for name in ("retrieval", "retrieval + ranking")}
    for row in report["results"]:
        assert 0 <= row["recall"] <= row["candidate_recall"] + 1e-9 <= 1 + 1e-9
        assert 0 <= row["ndcg"] <= 1 and 0 <= row["mrr"] <= 1 and row["users"] > 0
    assert "| click | retrieval + ranking | 4 |" in (result.run_dir / "evaluation.md").read_text()
    assert report["timings"]["ranking_rows_per_second"] > 0
    assert json.loads((result.run_dir / "run.json").read_text())["status"] == "completed"
    # The ranker is a normal mtrec run: it reloads and scores.
    assert (result.run_dir / "ranking" / "model.keras").is_file()

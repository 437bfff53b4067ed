"""ESMM-style chains: purchase after click."""

import keras
import numpy as np
import pandas as pd
import pytest

from mtrec.config import parse_config
from mtrec.data.funnel import make_funnel
from mtrec.data.io import write_parquet
from mtrec.errors import ConfigError, DataError
from mtrec.scoring import score_file
from mtrec.tasks import BinaryTask, tasks_from_config
from mtrec.training.evaluation import roc_auc
from mtrec.training.run import train

CONFIG = {
    "name": "funnel",
    "features": [{"name": "x*", "kind": "numeric"}],
    "tasks": [{"name": "click", "kind": "binary"}, {"name": "purchase", "kind": "binary", "after": "click"}],
    "model": {"kind": "mmoe", "num_experts": 4, "expert": {"units": [16]}, "tower_units": [8]},
    "training": {"epochs": 8, "batch_size": 256, "learning_rate": 0.003, "verbose": 0,
                 "early_stopping": {"monitor": "val_purchase_auc", "patience": 3}},
}


def test_chain_config_errors():
    with pytest.raises(ConfigError, match="after names task 'clik'"):
        tasks_from_config([{"name": "click", "kind": "binary"},
                           {"name": "buy", "kind": "binary", "after": "clik"}])
    with pytest.raises(ConfigError, match="cycle"):
        tasks_from_config([{"name": "a", "kind": "binary", "after": "b"},
                           {"name": "b", "kind": "binary", "after": "a"}])
    with pytest.raises(ConfigError, match="must name a binary task"):
        tasks_from_config([{"name": "r", "kind": "regression"},
                           {"name": "b", "kind": "binary", "after": "r"}])


@pytest.fixture(scope="module")
def funnel_run(tmp_path_factory):
    frame = make_funnel(12000, seed=0)
    run_dir = tmp_path_factory.mktemp("esmm")
    result = train(parse_config(CONFIG), run_dir, frame=frame)
    return result, frame


def test_joint_never_exceeds_click_and_conditional_learns(funnel_run, tmp_path):
    result, frame = funnel_run
    test = frame.iloc[result.prepared.splits["test"].index]
    source = tmp_path / "test.parquet"
    write_parquet(test.drop(columns=["click", "purchase"]), source)
    score_file(result.run_dir, source, tmp_path / "scores.parquet", progress=False)
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(scores.columns) == ["click", "purchase", "purchase_conditional"]
    assert (scores["purchase"] <= scores["click"] + 1e-7).all()
    np.testing.assert_allclose(scores["purchase_conditional"] * scores["click"], scores["purchase"],
                               rtol=1e-4, atol=1e-6)
    clicked = test["click"].to_numpy() == 1
    buy = test["purchase"].to_numpy()[clicked]
    auc = roc_auc(buy, scores["purchase_conditional"].to_numpy()[clicked])
    assert auc > 0.7, auc
    # The conditional tracks the true p(buy | click) over the whole space, not only clicked rows.
    corr = np.corrcoef(scores["purchase_conditional"], test["p_buy_given_click"])[0, 1]
    assert corr > 0.6, corr


def test_inconsistent_chain_labels_are_refused(tmp_path):
    frame = make_funnel(600, seed=1)
    frame.loc[frame.index[(frame["click"] == 0).to_numpy()][:3], "purchase"] = 1
    with pytest.raises(DataError, match="3 rows.*purchase = 1 where click = 0"):
        train(parse_config(CONFIG), tmp_path / "bad", frame=frame)

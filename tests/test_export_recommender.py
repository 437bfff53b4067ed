"""`mtrec export --recommender`: one graph from a user's columns to the top N items equals `mtrec recommend`."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from mtrec.cli import main
from mtrec.errors import DataError
from mtrec.export import MANIFEST
from mtrec.export.recommender import export_recommender, recommender_request
from mtrec.recommend import parse_recommend_config, recommend

from test_recommend import E2E, _tables

# The recommend test's job, trained less: the export must reproduce whatever the run recommends.
CONFIG = {**E2E, "retrieval": {**E2E["retrieval"], "epochs": 2},
          "ranking": {**E2E["ranking"], "training": {**E2E["ranking"]["training"], "epochs": 1}}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommender")
    tables = _tables()
    recommend(parse_recommend_config(CONFIG), root / "run", tables=tables, progress=False, verbose=0)
    tables.items.to_parquet(root / "items.parquet", index=False)
    assert main(["export", "--recommender", str(root / "run"), str(root / "model"),
                 "--items", str(root / "items.parquet")]) == 0
    return root, tables


CLIENT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    model = tf.saved_model.load(sys.argv[1])
    data = np.load(sys.argv[2])
    serve = model.signatures["serving_default"]
    inputs = {k: tf.constant(data[k]) for k in data.files}
    def as_lists(out):
        return {k: (v.numpy().astype(str) if v.dtype == tf.string else v.numpy()).tolist() for k, v in out.items()}
    report = {"all": as_lists(serve(**inputs)),
              "singles": [as_lists(serve(**{k: v[i:i + 1] for k, v in inputs.items()})) for i in range(3)],
              "keywords": as_lists(model.serving_default(**{k: v[:2] for k, v in inputs.items()})),
              "mtrec_loaded": any(m.split(".")[0] == "mtrec" for m in sys.modules)}
    try:
        model.serving_default(**{k: tf.cast(v, tf.float32) if v.dtype == tf.float64 else v
                                 for k, v in inputs.items()})
    except TypeError as err:
        report["dtype_error"] = str(err)[:300]
    try:
        model.serving_default(**{k: v for k, v in inputs.items() if k != "user_id"})
    except TypeError as err:
        report["missing_error"] = str(err)[:300]
    print("REPORT" + json.dumps(report))
""")


def test_exported_recommender_equals_mtrec_recommend_in_a_tensorflow_only_process(exported, tmp_path):
    root, tables = exported
    manifest = json.loads((root / "model" / MANIFEST).read_text())
    assert [i["input_name"] for i in manifest["inputs"]] == ["user_id", "age"]
    assert (manifest["k"], manifest["n"], manifest["items"]) == (10, 4, 30)
    recs = pd.read_parquet(root / "run" / "recommendations.parquet")
    # Users with history, and user 99 without any (popularity candidates).
    users = tables.users.iloc[[0, 7, 40, 21]].reset_index(drop=True)
    np.savez(tmp_path / "users.npz", **recommender_request(users, root / "run"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", CLIENT, str(root / "model"), str(tmp_path / "users.npz")],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT")]
    assert lines, result.stderr[-3000:]
    report = json.loads(lines[0][len("REPORT"):])
    assert not report["mtrec_loaded"]
    got = report["all"]
    assert got["source"][2] == "popularity" and got["source"][0] == "retrieval"
    for row, user in enumerate(users["user_id"]):
        expected = recs[recs["user_id"] == user]
        assert got["item_id"][row] == expected["item_id"].astype(str).tolist(), user
        for column in ("click", "rating", "like", "like_conditional", "score", "retrieval_score"):
            np.testing.assert_allclose(got[column][row], expected[column].to_numpy("float64"), atol=1e-5,
                                       rtol=0, err_msg=f"{column} of user {user}")
        assert got["retrieval_rank"][row] == expected["retrieval_rank"].tolist()
        assert got["source"][row] == expected["source"].iloc[0]
    for i, single in enumerate(report["singles"]):  # batch size 1 gives the same lists
        assert single["item_id"][0] == got["item_id"][i]
        np.testing.assert_allclose(single["score"][0], got["score"][i], atol=1e-9)
    assert report["keywords"]["item_id"] == got["item_id"][:2]
    assert "name='age'" in report["dtype_error"] and "tf.float64" in report["dtype_error"]
    assert "missing a required argument: 'user_id'" in report["missing_error"]


def test_a_users_own_features_reach_both_towers_and_the_ranker(exported):
    """The graph reads the user's columns from the request, in retrieval too.

    `mtrec recommend` retrieves with the features recorded at retrieval
    training (`CandidateIndex` fills in columns the users table lacks); here
    the request's age differs from the recorded one (a missing age, another
    value), so the reference is the recommend stages given these features:
    `CandidateIndex.query` with the age column, then `rank_candidates`.
    """
    import tensorflow as tf

    from mtrec.recommend.config import load_recommend_config
    from mtrec.recommend.interactions import Tables
    from mtrec.recommend.stages import output_table, rank_candidates
    from mtrec.retrieval import CandidateIndex
    from mtrec.training.trained_run import load_run

    root, tables = exported
    config = load_recommend_config(root / "run" / "config.yaml")
    users = tables.users.iloc[[3, 12]].reset_index(drop=True).assign(age=[np.nan, 50.0])
    candidates = CandidateIndex.load(root / "run").query(users, k=config.output.k).assign(source="retrieval")
    ranked, _, tasks = rank_candidates(load_run(root / "run" / "ranking"), candidates,
                                       Tables(tables.interactions, users, tables.items), config, False)
    expected = output_table(ranked, config, tasks)
    model = tf.saved_model.load(str(root / "model"))
    got = model.serving_default(**{k: tf.constant(v) for k, v in recommender_request(users, root / "run").items()})
    for row, user in enumerate(users["user_id"]):
        rows = expected[expected["user_id"] == user]
        assert got["item_id"].numpy()[row].astype(str).tolist() == rows["item_id"].astype(str).tolist()
        for column in ("score", "retrieval_score"):
            np.testing.assert_allclose(got[column].numpy()[row], rows[column].to_numpy("float64"), atol=1e-5, rtol=0)


def test_unfinished_recommend_run_names_what_is_missing(exported, tmp_path):
    root, tables = exported
    partial = tmp_path / "partial"
    shutil.copytree(root / "run", partial, ignore=shutil.ignore_patterns("candidate_tower", "tensorboard"))
    shutil.rmtree(partial / "retrieval" / "query_tower")
    with pytest.raises(DataError, match=r"missing \['retrieval/query_tower'\]"):
        export_recommender(partial, tmp_path / "out", items=tables.items)
    shutil.copytree(root / "run" / "retrieval" / "query_tower", partial / "retrieval" / "query_tower")
    (partial / "run.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(DataError, match="status 'running'"):
        export_recommender(partial, tmp_path / "out", items=tables.items)
    assert not (tmp_path / "out").exists()

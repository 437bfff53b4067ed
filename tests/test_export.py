"""`mtrec export`: the SavedModel from raw columns matches `mtrec score`, in a process without mtrec."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mtrec.cli import main
from mtrec.config import parse_config
from mtrec.data.io import mark_missing
from mtrec.errors import ConfigError, DataError
from mtrec.export import MANIFEST, GraphEncoder, export_run, read_blend, request_columns
from mtrec.export.hashing import hash_ids as tf_hash_ids
from mtrec.features.vocabulary import hash_ids
from mtrec.recommend.blend import Blend, BlendConfig
from mtrec.scoring.score import score_frame
from mtrec.training.run import train
from mtrec.training.trained_run import load_run

TAGS = ["Action", "Comedy", " Drama", "Sci-Fi", "Horror", "Noir"]

CONFIG = {
    "name": "export_test",
    "seed": 1,
    "data": {"id_columns": ["row_id"]},
    "features": [
        {"name": "user", "kind": "categorical", "embedding_dim": 4, "min_count": 15},
        {"name": "city", "kind": "categorical", "embedding_dim": 4, "hash_buckets": 32},
        {"name": "item", "kind": "categorical", "embedding_dim": 4},
        {"name": "tags", "kind": "multi_categorical", "embedding_dim": 4, "max_length": 3},
        {"name": "age", "kind": "numeric", "impute": "median"},
        {"name": "income", "kind": "numeric", "log1p": True, "clip": [8.0, 12.0]},
        {"name": "score", "kind": "numeric", "impute": "zero", "missing_indicator": "always"},
    ],
    "tasks": [{"name": "click", "kind": "binary"}, {"name": "buy", "kind": "binary", "after": "click"},
              {"name": "rating", "kind": "regression"},
              {"name": "segment", "kind": "multiclass", "num_classes": 3}],
    "model": {"kind": "mmoe", "num_experts": 2, "expert": {"units": [8]}, "tower_units": [4]},
    "training": {"epochs": 1, "batch_size": 256, "verbose": 0, "early_stopping": None},
}
BLEND = BlendConfig(kind="sum", weights={"click": 1.0, "rating": 0.5})


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """Rows with string, hashed and integer categories, tag lists and numbers, some missing."""
    rng = np.random.default_rng(seed)
    user = np.array([f"u{i}" for i in range(200)], dtype=object)[rng.integers(0, 200, n)]
    user[rng.random(n) < 0.03] = None
    city = np.array([f"city_{i}" for i in range(80)], dtype=object)[rng.integers(0, 80, n)]
    tags = np.array(["|".join(rng.choice(TAGS, rng.integers(0, 5), replace=False)) for _ in range(n)],
                    dtype=object)
    tags[rng.random(n) < 0.05] = None
    age = rng.normal(40, 12, n)
    age[rng.random(n) < 0.1] = np.nan
    score = rng.normal(0, 1, n)
    score[rng.random(n) < 0.05] = np.nan
    item = rng.integers(0, 50, n)
    z = 0.02 * np.nan_to_num(age - 40) + 0.5 * np.nan_to_num(score) + (item % 3 == 0)
    click = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return pd.DataFrame({
        "row_id": np.arange(n), "user": user, "city": city, "item": item, "tags": tags, "age": age,
        "income": rng.lognormal(10, 1, n), "score": score, "click": click,
        "buy": click * (rng.random(n) < 0.4), "rating": z + rng.normal(0, 0.1, n), "segment": item % 3})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    train(parse_config(CONFIG), root / "run", frame=make_frame(2000, seed=0))
    run = load_run(root / "run")
    export_run(run, root / "model", gates=True, blend=BLEND)
    return run, root


def edge_rows() -> pd.DataFrame:
    """Held-out rows plus unseen categories, missing values and NaN/inf numbers."""
    frame = make_frame(400, seed=5)
    edits = [("user", "never_seen_user"), ("city", "a_new_city"), ("item", 999), ("tags", "Unknown|Action"),
             ("tags", ""), ("tags", " | Comedy ||"), ("tags", None), ("user", None), ("age", np.nan),
             ("age", np.inf), ("score", -np.inf), ("income", np.nan), ("tags", "A|B|C|D|Noir"),
             ("user", "NA"), ("tags", "null"), ("city", "None")]  # data.na_values: missing in `mtrec score`
    for row, (column, value) in enumerate(edits):
        frame[column] = frame[column].astype(object) if column == "item" else frame[column]
        frame.at[row, column] = value
    frame["item"] = frame["item"].astype(np.int64)
    return frame


CLIENT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    model_dir, data = sys.argv[1], np.load(sys.argv[2])
    names, ids = json.loads(sys.argv[3]), json.loads(sys.argv[4])
    inputs = {k: data[k] for k in names}
    loaded = tf.saved_model.load(model_dir)
    serve = loaded.signatures["serving_default"]
    def run(rows, signature=serve, extra=()):
        out = signature(**{k: tf.constant(v[rows]) for k, v in inputs.items()},
                        **{k: tf.constant(data[k][rows]) for k in extra})
        return {k: v.numpy() for k, v in out.items()}
    n = len(inputs[names[0]])
    full = run(np.arange(n))
    singles = [run(np.array([i])) for i in range(12)]
    big = run(np.arange(4096) % n)
    batch = run(np.arange(n), loaded.signatures["serve_batch"], extra=ids)
    report = {"mtrec_loaded": any(m.split(".")[0] == "mtrec" for m in sys.modules),
              "outputs": sorted(full), "batch_outputs": sorted(batch), "diff": {}}
    for key, value in full.items():
        expected = data["ref_" + key]
        report["diff"][key] = max(float(np.abs(value - expected).max()),
                                  max(float(np.abs(s[key] - expected[i:i + 1]).max()) for i, s in enumerate(singles)),
                                  float(np.abs(big[key] - expected[np.arange(4096) % n]).max()),
                                  float(np.abs(batch[key] - expected).max()))
    report["ids_passed"] = all(bool((batch[k].astype(str) == data[k]).all()) for k in ids)
    first = sorted(names)[0]
    try:
        serve(**{k: tf.constant(v[:2]) for k, v in inputs.items() if k != first})
    except TypeError as err:
        report["missing_error"] = str(err)[:200]
    try:
        # The wrong dtype for the first input: float32 for a number, int32 for a string.
        wrong = inputs[first][:2].astype(np.float32) if inputs[first].dtype == np.float64 else np.zeros(2, np.int32)
        serve(**{k: tf.constant(wrong if k == first else v[:2]) for k, v in inputs.items()})
    except Exception as err:
        report["dtype_error"] = str(err)[:300]
    # The root function takes one argument per input: TensorFlow names the column and the dtype it expects.
    numeric = next(k for k in names if inputs[k].dtype == np.float64)
    try:
        loaded.serving_default(**{k: tf.constant(v[:2].astype(np.float32) if k == numeric else v[:2])
                                  for k, v in inputs.items()})
    except TypeError as err:
        report["named_dtype_error"] = [numeric, str(err)[:300]]
    try:
        loaded.serving_default(**{k: tf.constant(v[:2]) for k, v in inputs.items() if k != numeric})
    except TypeError as err:
        report["named_missing_error"] = [numeric, str(err)[:300]]
    report["keyword_call"] = float(np.abs(loaded.serving_default(**{k: tf.constant(v) for k, v in inputs.items()})[
        sorted(full)[0]].numpy() - full[sorted(full)[0]]).max())
    print("REPORT" + json.dumps(report))
""")


def check_in_tensorflow_only_process(run, model_dir, frame, blend=None, tmp_path=None) -> dict:
    """Scores `frame` as `mtrec score` does here and with the SavedModel in a fresh process without mtrec."""
    na_values = run.config.data.na_values
    marked = mark_missing(frame, na_values)  # as `mtrec score` reads a file
    reference = score_frame(run, marked)
    if blend is not None:
        reference["score"] = Blend(blend)(reference)
    ids = json.loads((model_dir / MANIFEST).read_text())["id_columns"]
    arrays = {f"ref_{k}": (np.stack(v.to_numpy()) if k.endswith("_proba") else v.to_numpy())
              for k, v in reference.items() if k not in run.config.data.id_columns}
    if run.model.gated:
        features = run.encoder.transform(marked)
        arrays.update({f"ref_gate_{k.replace('/', '_')}": v for k, v in run.model.gate_weights(features).items()})
    inputs = request_columns(frame, run.encoder, na_values)
    np.savez(tmp_path / "rows.npz", **{k: frame[k].astype(str).to_numpy().astype(str) for k in ids},
             **inputs, **arrays)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(model_dir), str(tmp_path / "rows.npz"), json.dumps(list(inputs)),
         json.dumps(ids)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT")]
    assert lines, result.stderr[-3000:]
    report = json.loads(lines[0][len("REPORT"):])
    assert not report["mtrec_loaded"]
    assert report["outputs"] == sorted(k[len("ref_"):] for k in arrays)
    assert report["batch_outputs"] == sorted(report["outputs"] + ids)
    assert report["ids_passed"]
    assert max(report["diff"].values()) <= 1e-5, report["diff"]
    first = sorted(inputs)[0]
    assert f"missing a required argument: '{first}'" in report["missing_error"]
    # Through the signature, TensorFlow's own dtype check names the input's position and the dtype ...
    assert "was expected to be a" in report["dtype_error"], report["dtype_error"]
    # ... through the root function, the column and the dtype it expects.
    column, message = report["named_dtype_error"]
    assert f"dtype=tf.float32, name='{column}') to TensorSpec(shape=(None,), dtype=tf.float64" in message, message
    column, message = report["named_missing_error"]
    assert f"missing a required argument: '{column}'" in message, message
    assert report["keyword_call"] == 0.0
    return report


def test_fresh_tensorflow_process_matches_score_frame(exported, tmp_path):
    run, root = exported
    report = check_in_tensorflow_only_process(run, root / "model", edge_rows(), BLEND, tmp_path)
    assert report["outputs"] == sorted(["click", "buy", "buy_conditional", "rating", "segment", "segment_proba",
                                        "score", "gate_click", "gate_buy", "gate_rating", "gate_segment"])
    assert "double" in report["dtype_error"]  # 'age' is float64


def test_graph_encoder_equals_python_encoder(exported):
    run, _ = exported
    frame = edge_rows()
    expected = run.encoder.transform(frame)
    got = GraphEncoder(run.encoder)({k: tf.constant(v) for k, v in request_columns(frame, run.encoder).items()})
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype.as_numpy_dtype == value.dtype, key
        np.testing.assert_array_equal(got[key].numpy(), value, err_msg=key)


def test_na_values_are_missing_in_the_graph(exported):
    """Raw 'NA', 'null', 'None' and '' cells sent as they are encode as `mtrec score` reads them: missing."""
    run, _ = exported
    frame = edge_rows()
    na_values = run.config.data.na_values
    assert {"", "NA", "null", "None"} <= set(na_values)
    expected = run.encoder.transform(mark_missing(frame, na_values))
    raw = request_columns(frame, run.encoder)  # the na strings left in
    assert "NA" in raw["user"] and "null" in raw["tags"] and "None" in raw["city"]
    got = GraphEncoder(run.encoder, na_values)({k: tf.constant(v) for k, v in raw.items()})
    for key in ("user", "city", "item"):
        np.testing.assert_array_equal(got[key].numpy(), expected[key], err_msg=key)
    # An empty tag string is a missing cell once '' is a na value (it is by default).
    tags = GraphEncoder(run.encoder, na_values)({**{k: tf.constant(v) for k, v in raw.items()},
                                                 "tags": tf.constant(np.where(raw["tags"] == "|", "", raw["tags"]))})
    np.testing.assert_array_equal(tags["tags"].numpy(), expected["tags"])


def test_log1p_below_minus_one_fails_naming_the_column(exported):
    run, _ = exported
    inputs = {k: tf.constant(v[:2]) for k, v in request_columns(edge_rows(), run.encoder).items()}
    inputs["income"] = tf.constant([5.0, -3.0], tf.float64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Column 'income'.*log1p needs values > -1"):
        GraphEncoder(run.encoder)(inputs)


def test_infinite_numbers_are_missing_in_the_saved_model(exported):
    """+/-inf in a numeric request column scores as a missing value, as the Python encoder reads it."""
    run, root = exported
    frame = make_frame(60, seed=9)
    infinite, missing = frame.copy(), frame.copy()
    for column, rows, value in (("age", slice(0, 10), np.inf), ("age", slice(10, 20), -np.inf),
                                ("income", slice(20, 30), np.inf), ("income", slice(30, 35), -np.inf),
                                ("score", slice(35, 45), -np.inf), ("score", slice(45, 50), np.inf)):
        infinite.loc[infinite.index[rows], column] = value
        missing.loc[missing.index[rows], column] = np.nan
    loaded = tf.saved_model.load(str(root / "model"))
    got = {name: loaded.serving_default(**{k: tf.constant(v) for k, v in request_columns(rows, run.encoder).items()})
           for name, rows in (("inf", infinite), ("nan", missing))}
    reference = score_frame(run, missing)
    for key in ("click", "buy", "rating", "score"):
        np.testing.assert_array_equal(got["inf"][key].numpy(), got["nan"][key].numpy(), err_msg=key)
        if key != "score":
            np.testing.assert_allclose(got["inf"][key].numpy(), reference[key].to_numpy(), atol=1e-6, err_msg=key)
    # score's missing flag column (missing_indicator: always) is 1 for both infinities.
    flags = GraphEncoder(run.encoder)({k: tf.constant(v) for k, v in request_columns(infinite, run.encoder).items()})
    np.testing.assert_array_equal(flags["numeric"].numpy()[35:50, -1], 1.0)
    np.testing.assert_array_equal(flags["numeric"].numpy(), run.encoder.transform(missing)["numeric"])


JAX_TRAIN = textwrap.dedent("""
    import json, sys
    import keras
    import pandas as pd

    assert keras.backend.backend() == "jax", keras.backend.backend()
    from mtrec.config import parse_config
    from mtrec.scoring.score import score_frame
    from mtrec.training.run import train
    from mtrec.training.trained_run import load_run

    config, run_dir, rows = json.loads(sys.argv[1]), sys.argv[2], pd.read_pickle(sys.argv[3])
    train(parse_config(config), run_dir, frame=pd.read_pickle(sys.argv[4]))
    score_frame(load_run(run_dir), rows).to_pickle(sys.argv[5])
""")


def test_a_run_trained_on_jax_exports_the_same_way(tmp_path):
    """Trained and scored under KERAS_BACKEND=jax, exported here under TensorFlow: the same scores as JAX gives."""
    pytest.importorskip("jax")
    # A smaller job than CONFIG (JAX compiles every step function): hashed, multi-valued and flagged numeric
    # inputs, a plain and an ESMM-chained task.
    config = {**CONFIG, "features": [CONFIG["features"][i] for i in (1, 3, 6)], "tasks": CONFIG["tasks"][:2],
              "training": {**CONFIG["training"], "batch_size": 512}}
    rows = mark_missing(edge_rows(), ["", "NA", "null", "None"])
    make_frame(1000, seed=0).to_pickle(tmp_path / "train.pkl")
    rows.to_pickle(tmp_path / "rows.pkl")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", JAX_TRAIN, json.dumps(config), str(tmp_path / "run"),
                             str(tmp_path / "rows.pkl"), str(tmp_path / "train.pkl"), str(tmp_path / "jax.pkl")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jax_scores = pd.read_pickle(tmp_path / "jax.pkl")
    run = load_run(tmp_path / "run")
    export_run(run, tmp_path / "model")
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    got = loaded.serving_default(**{k: tf.constant(v) for k, v in request_columns(rows, run.encoder).items()})
    assert sorted(got) == ["buy", "buy_conditional", "click"]
    for task in got:
        np.testing.assert_allclose(got[task].numpy(), jax_scores[task].to_numpy(), atol=1e-5, rtol=0, err_msg=task)


def test_read_blend(tmp_path):
    (tmp_path / "recommend.yaml").write_text("name: x\nblend: {kind: sum, weights: {click: 2.0}}\n")
    (tmp_path / "bare.yaml").write_text("kind: product\nweights: {click: 1.0, rating: 0.5}\n")
    assert read_blend(tmp_path / "recommend.yaml") == BlendConfig(kind="sum", weights={"click": 2.0})
    assert read_blend(tmp_path / "bare.yaml").weights == {"click": 1.0, "rating": 0.5}
    with pytest.raises(ConfigError, match="does not exist"):
        read_blend(tmp_path / "nope.yaml")


def test_hash_ids_match_the_python_encoder():
    rng = np.random.default_rng(0)
    strings = np.array(["", "<missing>", "héllo wörld", "12345", "x" * 300, "日本語"]
                       + [f"v{k}" for k in rng.integers(0, 10**9, 500)], dtype=object)
    for buckets in (1, 7, 1000, 2**31 - 1):
        np.testing.assert_array_equal(tf_hash_ids(tf.constant(strings.tolist()), buckets).numpy(),
                                      hash_ids(strings, buckets))


def test_manifest_and_cli(exported, tmp_path, capsys):
    run, root = exported
    manifest = json.loads((root / "model" / MANIFEST).read_text())
    assert manifest["signatures"] == ["serving_default", "serve_batch"]
    assert {i["name"]: i["dtype"] for i in manifest["inputs"]} == {
        "age": "float64", "income": "float64", "score": "float64", "user": "string", "city": "string",
        "item": "string", "tags": "string"}
    assert main(["export", str(root / "model"), str(tmp_path / "x")]) == 2  # not a run directory
    err = capsys.readouterr().err
    assert "missing ['config.yaml', 'features.json', 'model.keras']" in err
    assert main(["export", str(root / "run"), str(root / "model")]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err


def test_unfinished_run_names_what_is_missing(exported, tmp_path):
    run, root = exported
    partial = tmp_path / "partial"
    shutil.copytree(root / "run", partial)
    (partial / "model.keras").unlink()
    with pytest.raises(DataError, match=r"missing \['model.keras'\]"):
        export_run(partial, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_gates_need_a_gated_model(exported, tmp_path, monkeypatch):
    run, _ = exported
    monkeypatch.setattr(type(run.model), "gated", False)
    with pytest.raises(ConfigError, match="--gates needs a gated model"):
        export_run(run, tmp_path / "out", gates=True)


def test_other_backends_are_told_to_use_tensorflow(exported, tmp_path, monkeypatch):
    import keras

    run, _ = exported
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ConfigError, match="KERAS_BACKEND=tensorflow mtrec export"):
        export_run(run, tmp_path / "out")

"""Numeric feature embeddings (Gorishniy et al., 2022): piecewise-linear over quantiles, periodic (PLR)."""

import copy

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mtrec.config import parse_config
from mtrec.errors import ConfigError
from mtrec.export import export_run, request_columns
from mtrec.features.numeric_embedding import quantile_edges
from mtrec.features.specs import NumericEmbedding, parse_features
from mtrec.layers import FeatureEmbedding, NumericEmbedding as NumericEmbeddingLayer
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.scoring.score import score_frame
from mtrec.training.run import train
from mtrec.training.trained_run import load_run
from mtrec.utils.validation import get_config


def test_piecewise_linear_encoding_is_the_papers_formula():
    """Edges 0, 1, 3, 4: e_t = clip((x - b_{t-1}) / (b_t - b_{t-1}), 0, 1); bucket 1 open below, bucket 3 above."""
    layer = NumericEmbeddingLayer("quantile", dim=2, edges=[0.0, 1.0, 3.0, 4.0])
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.5, 4.0, 5.0], dtype="float32")
    expected = np.array([
        [-1.0, 0.0, 0.0],   # below the first edge: the first bucket extrapolates
        [0.0, 0.0, 0.0],
        [0.5, 0.0, 0.0],    # inside bucket 1
        [1.0, 0.0, 0.0],
        [1.0, 0.5, 0.0],    # inside bucket 2: (2 - 1) / (3 - 1)
        [1.0, 1.0, 0.5],    # inside bucket 3
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 2.0],    # above the last edge: the last bucket extrapolates
    ])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.encode(x)), expected, atol=1e-6)
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == (8, 2) and (out >= 0).all()  # Linear + ReLU


def test_quantile_edges_are_distinct_and_cover_the_training_values():
    values = np.concatenate([np.zeros(500), np.linspace(1, 2, 500)])  # half the rows tied at 0
    edges = quantile_edges(values, bins=8)
    assert edges[0] == 0.0 and edges[-1] == 2.0 and len(edges) < 9
    assert all(b > a for a, b in zip(edges, edges[1:]))
    assert quantile_edges(np.full(10, 3.0), bins=4) == [3.0, 4.0]  # a constant column: one bucket


def test_periodic_embedding_shape_and_trainable_frequencies():
    keras.utils.set_random_seed(0)
    layer = NumericEmbeddingLayer("periodic", dim=5, frequencies=6, sigma=0.5)
    x = np.linspace(-2, 2, 64).astype("float32")[:, None]
    assert layer(x).shape == (64, 5)
    assert layer.coefficients.shape == (6,) and layer.coefficients.trainable
    start = keras.ops.convert_to_numpy(layer.coefficients).copy()
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.fit(x, np.sin(3 * x), epochs=3, batch_size=16, verbose=0)
    assert np.abs(keras.ops.convert_to_numpy(layer.coefficients) - start).max() > 1e-3
    clone = NumericEmbeddingLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_feature_embedding_replaces_embedded_columns():
    layout = {"numeric_dim": 3, "numeric_embeddings": [
        {"column": 1, "name": "b", "kind": "quantile", "dim": 4, "relu": True, "edges": [-1.0, 0.0, 1.0]},
        {"column": 2, "name": "c", "kind": "periodic", "dim": 2, "relu": False, "frequencies": 3, "sigma": 1.0}]}
    layer = FeatureEmbedding(layout)
    x = np.random.default_rng(0).normal(size=(7, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(layer({"numeric": x}))
    assert layer.output_dim == 1 + 4 + 2 and out.shape == (7, 7)
    np.testing.assert_allclose(out[:, 0], x[:, 0])  # the plain column passes through
    assert FeatureEmbedding.from_config(layer.get_config()).layout == layer.layout
    with pytest.raises(ValueError, match="column 3"):
        FeatureEmbedding({"numeric_dim": 3, "numeric_embeddings": [{**layout["numeric_embeddings"][0], "column": 3}]})


def test_config_round_trip_and_refusals():
    items = [{"name": "x*", "kind": "numeric", "embedding": {"kind": "quantile", "bins": 8, "dim": 4}},
             {"name": "age", "kind": "numeric", "embedding": {"kind": "periodic", "frequencies": 8, "sigma": 0.1}}]
    specs = parse_features(items)
    assert specs[0].embedding == NumericEmbedding(kind="quantile", dim=4, bins=8)
    assert specs[1].embedding.params == {"kind": "periodic", "dim": 16, "frequencies": 8, "sigma": 0.1, "relu": True}
    assert parse_features([get_config(s) for s in specs]) == specs
    for embedding, key in (({"kind": "bucket"}, "features[0].embedding.kind"),
                           ({"kind": "quantile", "bins": 1}, "features[0].embedding.bins"),
                           ({"kind": "quantile", "dim": 0}, "features[0].embedding.dim"),
                           ({"kind": "periodic", "bins": 8}, "features[0].embedding.bins"),
                           ({"kind": "quantile", "sigma": 1.0}, "features[0].embedding.sigma"),
                           ({"kind": "quantile", "size": 3}, "features[0].embedding.size"),
                           ({"dim": 3}, "features[0].embedding.kind")):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            parse_features([{"name": "a", "kind": "numeric", "embedding": embedding}])


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[rng.random(n) < 0.05, 2] = np.nan  # a missing-value flag column stays a plain column
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(4)])
    frame["y0"] = np.sin(2 * x[:, 0]) + np.abs(x[:, 1]) + 0.1 * rng.normal(size=n)
    frame["y1"] = np.sign(x[:, 1]) + x[:, 3] ** 2 + 0.1 * rng.normal(size=n)
    return frame


def test_quantile_embedding_run_trains_reloads_and_exports(tmp_path):
    raw = copy.deepcopy(QUICKSTART_CONFIG)
    del raw["data"]["synthetic"]
    raw["features"] = [{"name": "x*", "kind": "numeric", "embedding": {"kind": "quantile", "bins": 8, "dim": 4}}]
    raw["model"].update(num_experts=2)
    raw["training"].update(epochs=2, early_stopping=None, verbose=0)
    frame = _frame(1000, seed=0)
    result = train(parse_config(raw), tmp_path / "run", frame=frame)
    entries = result.model.feature_layout["numeric_embeddings"]
    assert [e["name"] for e in entries] == ["x0", "x1", "x2", "x3"]
    for entry in entries:  # edges fit on the encoded training split: 8 buckets of standardized values
        assert len(entry["edges"]) == 9 and entry["edges"][0] < -1.5 < 1.5 < entry["edges"][-1]
    rows = _frame(200, seed=1)
    features = result.prepared.encoder.transform(rows)
    before = {k: np.asarray(v) for k, v in result.model.predict(features, verbose=0).items()}
    run = load_run(tmp_path / "run")
    assert run.model.feature_layout["numeric_embeddings"] == entries
    scored = score_frame(run, rows)
    for task in ("y0", "y1"):
        np.testing.assert_allclose(scored[task].to_numpy(), before[task].reshape(-1), rtol=1e-5, atol=1e-6)
    export_run(run, tmp_path / "model")
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    served = loaded.serving_default(**{k: tf.constant(v) for k, v in request_columns(rows, run.encoder).items()})
    for task in ("y0", "y1"):
        np.testing.assert_allclose(served[task].numpy().reshape(-1), scored[task].to_numpy(), rtol=1e-5, atol=1e-5)

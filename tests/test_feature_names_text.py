"""Any column name as a feature (internal names, collisions refused) and the `text` feature kind.

Contract: config round trip, the streamed partial fit equal to the in-memory
fit, the exported graph's tokenization equal to Python's on tricky strings,
and one trained run with spaced names and text that saves, reloads and
exports with identical scores.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mtrec.config import parse_config
from mtrec.errors import ConfigError
from mtrec.export import MANIFEST, GraphEncoder, export_run, request_columns
from mtrec.features import FeatureEncoder, TextFeature, internal_names, parse_features
from mtrec.features.names import short_hash
from mtrec.features.text import tokenize
from mtrec.scoring.score import score_frame
from mtrec.training.run import train
from mtrec.training.trained_run import load_run

TRICKY = [
    "Don't  STOP—believin'!! Ünïcode ÇA  va?\tyes\u00a0no 😀 ΣΑΣ", "", "   ", "!!!", None, np.nan,
    "a\x00b\x1fc", "İstanbul ẞ straße ǅ ﬁ", "x\u2028y\u3000z\u200bw", "end.Start,mid;semi: colon",
    "re-use e-mail 100% $5", "tab\tnew\nline\r\nx", "ⱟ Ⱟ 𐕰 A", "l'été — «chaud» …", "ΣΑΣ. ΟΔΟΣ",
    "  lead trail  ", "emoji🎉inside", "日本語のテキスト、です。", "Fits well", "fits WELL!", "NA",
]


def test_tokenize_steps():
    assert tokenize("Don't  STOP—believin'!! 😀 ok") == ["dont", "stop", "believin", "ok"]
    assert tokenize("Very good, very GOOD.", ngrams=2) == [
        "very", "good", "very", "good", "very good", "good very", "very good"]
    assert tokenize("tab\tnew\nline\u00a0x\u3000y") == ["tab", "new", "line", "x", "y"]
    assert tokenize("re-use 100% $5") == ["re", "use", "100", "5"]
    assert tokenize("ΣΑΣ ÇA") == ["σας", "ça"]
    assert tokenize("") == [] and tokenize(" !!! ") == []


def test_internal_names():
    names = internal_names(["item_id", "Clothing ID", "prix (€)", "a b", "a_b", "a-b", "年齢"])
    assert names["item_id"] == "item_id" and names["Clothing ID"] == "Clothing_ID"
    assert names["prix (€)"] == "prix____"
    # "a b" and "a-b" sanitize to the kept name "a_b": both get a short hash of their own name.
    assert names["a_b"] == "a_b" and names["a b"] == f"a_b_{short_hash('a b')}" != names["a-b"]
    assert names["年齢"] == f"x___{short_hash('年齢')}"
    assert len(set(names.values())) == len(names)


def test_colliding_names_are_refused_at_config_time_naming_both():
    with pytest.raises(ConfigError, match=r"'Clothing ID' \(features\[0\]\.name\) and 'Clothing ID ' "
                                          r"\(features\[1\]\.name\)"):
        parse_features([{"name": "Clothing ID", "kind": "categorical"},
                        {"name": "Clothing ID ", "kind": "categorical"}])
    with pytest.raises(ConfigError, match=r"table names 'x' \(features\[0\]\.table\) and ' x' \(features\[1\]\.table\)"):
        parse_features([{"name": "a", "kind": "categorical", "table": "x"},
                        {"name": "b", "kind": "categorical", "table": " x"}])
    # Names that only sanitize alike are fine: they get distinct internal names.
    parse_features([{"name": "Clothing ID", "kind": "categorical"}, {"name": "Clothing_ID", "kind": "categorical"},
                    {"name": "Clothing-ID", "kind": "text"}])


def test_text_config_and_refusals():
    spec = parse_features([{"name": "Review Text", "kind": "text", "ngrams": 2, "max_tokens": 50}])[0]
    assert spec == TextFeature("Review Text", ngrams=2, max_tokens=50)
    assert spec.vocabulary_limit == 50 and spec.min_count == 2
    for bad, key in [({"ngrams": 3}, "ngrams"), ({"max_tokens": 0}, "max_tokens"),
                     ({"max_vocab_size": 10}, "max_vocab_size"), ({"separator": " "}, "separator")]:
        with pytest.raises(ConfigError, match=f"features\\[0\\]\\.{key}|'{key}'"):
            parse_features([{"name": "t", "kind": "text", **bad}])


def text_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["Love", "love!", "hate", "fits", "small,", "LARGE", "great", "poor", "fabric", "soft—",
                      "don't", "rough."])
    text = np.array([" ".join(rng.choice(words, rng.integers(0, 9))) for _ in range(n)], dtype=object)
    text[rng.random(n) < 0.05] = None
    loved = np.array([isinstance(t, str) and "love" in t.lower() for t in text])
    cloth = rng.integers(0, 40, n)
    rec = (rng.random(n) < 0.2 + 0.5 * loved + 0.2 * (cloth % 2)).astype(int)
    return pd.DataFrame({"Clothing ID": cloth, "Review Text": text, "Class Name": rng.choice(["Knits", "Pants"], n),
                         "Age (years)": rng.normal(40, 10, n), "Recommended IND": rec,
                         "Rating": 3 + rec + rng.normal(0, 0.3, n)})


def test_text_partial_fit_merged_equals_in_memory_fit():
    frame = pd.DataFrame({"t": TRICKY * 20, "u": [str(i % 7) for i in range(20 * len(TRICKY))]})
    specs = [{"name": "t", "kind": "text", "ngrams": 2, "min_count": 2, "max_tokens": 25},
             {"name": "u", "kind": "categorical"}]
    whole = FeatureEncoder(specs).fit(frame)
    streamed = FeatureEncoder(specs)
    state = None
    for start in range(0, len(frame), 37):
        part = streamed.partial_fit(frame.iloc[start:start + 37])
        state = part if state is None else state.merge(part)
    streamed.finish_fit(state)
    assert streamed.get_config() == whole.get_config()
    assert len(whole.vocabularies_["t"].values) == 25
    again = FeatureEncoder.from_config(json.loads(json.dumps(whole.get_config())))
    np.testing.assert_array_equal(again.transform(frame)["t"], whole.transform(frame)["t"])


@pytest.mark.parametrize("ngrams", [1, 2])
def test_graph_tokenization_equals_python_on_tricky_strings(ngrams):
    frame = pd.DataFrame({"Review Text": TRICKY * 2})
    encoder = FeatureEncoder([{"name": "Review Text", "kind": "text", "ngrams": ngrams, "min_count": 1}]).fit(frame)
    expected = encoder.transform(frame)["Review Text"]
    graph = GraphEncoder(encoder)
    got = graph({k: tf.constant(v) for k, v in request_columns(frame, encoder).items()})["Review Text"]
    np.testing.assert_array_equal(got.numpy(), expected)
    assert (expected[4] == [encoder.vocabularies_["Review Text"].values.index("<missing>") + 2] + [0] * (
        expected.shape[1] - 1)).all()  # a missing cell is ["<missing>"]
    assert (expected[1] == 0).all() and (expected[3] == 0).all()  # "" and "!!!": no token
    assert graph.input_signature()["Review Text"].name == "Review_Text"


CONFIG = {
    "name": "names_text", "seed": 3,
    "features": [
        {"name": "Clothing ID", "kind": "categorical", "embedding_dim": 4},
        {"name": "Review Text", "kind": "text", "ngrams": 2, "embedding_dim": 4, "max_length": 12},
        {"name": "Class Name", "kind": "categorical", "embedding_dim": 2},
        {"name": "Age (years)", "kind": "numeric"},
    ],
    "tasks": [{"name": "rec", "label": "Recommended IND", "kind": "binary"},
              {"name": "rating", "label": "Rating", "kind": "regression"}],
    "model": {"kind": "mmoe", "num_experts": 2, "expert": {"units": [8]}, "tower_units": [4]},
    "training": {"epochs": 2, "batch_size": 128, "learning_rate": 0.01, "verbose": 0, "early_stopping": None},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("names_text")
    config = parse_config(CONFIG)
    assert parse_config(config.get_config()).get_config() == config.get_config()  # config round trip
    result = train(config, root / "run", frame=text_frame(1500, seed=0))
    return result, root


def test_spaced_names_and_text_train_save_reload_identically(trained):
    result, root = trained
    paths = [w.path for w in result.model.weights if "table_" in w.path]
    assert any(p.endswith("table_Clothing_ID") for p in paths) and any("table_Review_Text" in p for p in paths)
    run = load_run(root / "run")
    frame = text_frame(300, seed=1)
    features = run.encoder.transform(frame)
    before = result.model.predict_on_batch(features)
    after = run.model.predict_on_batch(features)
    for task in ("rec", "rating"):
        np.testing.assert_array_equal(np.asarray(before[task]), np.asarray(after[task]))
    # The text matters: rows that say "love" are predicted more often recommended.
    scores = score_frame(run, frame)
    loved = frame["Review Text"].fillna("").str.lower().str.contains("love").to_numpy()
    assert scores["rec"][loved].mean() > scores["rec"][~loved].mean()


def test_spaced_names_and_text_export_equals_score_frame(trained):
    _, root = trained
    run = load_run(root / "run")
    export_run(run, root / "model")
    manifest = json.loads((root / "model" / MANIFEST).read_text())
    input_names = {entry["name"]: entry["input_name"] for entry in manifest["inputs"]}
    assert input_names == {"Age (years)": "Age__years_", "Clothing ID": "Clothing_ID",
                           "Class Name": "Class_Name", "Review Text": "Review_Text"}
    frame = text_frame(200, seed=2)
    frame.loc[:len(TRICKY) - 1, "Review Text"] = pd.Series(TRICKY, dtype=object).to_numpy()
    frame.loc[0, "Clothing ID"] = 999  # unseen
    from mtrec.data.io import mark_missing
    marked = mark_missing(frame, run.config.data.na_values)  # as `mtrec score` reads a file
    reference = score_frame(run, marked)
    serve = tf.saved_model.load(str(root / "model")).signatures["serving_default"]
    inputs = request_columns(frame, run.encoder, run.config.data.na_values)
    out = serve(**{input_names[k]: tf.constant(v) for k, v in inputs.items()})
    for task in ("rec", "rating"):
        np.testing.assert_allclose(out[task].numpy(), reference[task].to_numpy(), atol=1e-5)

"""Your own data, from nothing to a report: a new table through `mtrec pipeline -c` with no Python.

The table is a small made-up clothing-review table, the shape real tables
have: column names with spaces, a Yes/No label, a 1-5 rating, a count, free
text and a domain column (the store division). The config names it by
`experiment.data.path`; the CLI is called as a user would call it. Also the
run bookkeeping: `mtrec train --seeds` and `mtrec score --split test`.

CPU: about 35 s (five small trainings of 1-2 epochs on 1,000-2,000 rows,
plus LightGBM).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mtrec.cli import main


def reviews(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A review table: the labels depend on a hidden quality that the text's words reveal."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=n)
    division = rng.choice(["General", "General Petite", "Intimates"], size=n, p=[0.5, 0.3, 0.2])
    good = np.array(["love", "great", "perfect", "soft", "flattering", "it's lovely"])
    bad = np.array(["return", "cheap", "small", "itchy", "disappointed", "it. no"])
    filler = np.array(["the", "dress", "fabric", "color", "fit", "size", "top", "wear", "i", "it"])
    texts = []
    for q in quality:
        words = list(rng.choice(filler, size=6))
        words += list(rng.choice(good if q + rng.normal(scale=0.5) > 0 else bad, size=rng.integers(1, 4)))
        rng.shuffle(words)
        texts.append(" ".join(words).capitalize() + rng.choice([".", "!", "..."]))
    texts = np.array(texts, dtype=object)
    texts[rng.random(n) < 0.05] = None
    age = rng.integers(18, 80, size=n).astype(float)
    rating = np.clip(np.round(3 + 1.2 * quality + 0.3 * (division == "Intimates")
                              + rng.normal(scale=0.5, size=n)), 1, 5).astype(int)
    return pd.DataFrame({
        "Clothing ID": rng.integers(0, 60, size=n).astype(str),
        "Age": age,
        "Review Text": texts,
        "Division Name": division,
        "Recommended IND": np.where(quality + rng.normal(scale=0.5, size=n) > -0.3, "Yes", "No"),
        "Rating": rating,
        "Positive Feedback Count": rng.poisson(np.exp(0.3 + 0.5 * np.abs(quality) + 0.01 * (age - 40))),
    })


def _write(tmp_path: Path, table: pd.DataFrame, config: dict) -> tuple[Path, Path]:
    data = tmp_path / "reviews.csv"
    table.to_csv(data, index=False)
    config["experiment"]["data"]["path"] = str(data)
    path = tmp_path / "reviews.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return data, path


def _pipeline(tmp_path: Path, capsys, config_path: Path) -> dict:
    out = tmp_path / "out"
    assert main(["pipeline", "-c", str(config_path), "--out", str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "| lightgbm" in printed and "| constant" in printed  # the report, printed
    assert (out / "evaluation.md").is_file()
    return json.loads((out / "evaluation.json").read_text())


#: The split, training and LightGBM settings both variants share.
BASE = {
    "seeds": [1],
    "experiment": {
        "data": {"path": None, "split": {"kind": "random", "fractions": [0.6, 0.2, 0.2], "seed": 7}},
        "model": {"kind": "single_task"},
        "training": {"epochs": 2, "batch_size": 256, "learning_rate": 0.01, "verbose": 0,
                     "jit_compile": False},
    },
    "lightgbm": {"num_boost_round": 100, "early_stopping_rounds": 20},
}


def test_own_table_through_a_config_alone(tmp_path, capsys):
    """Issue 17's acceptance: spaced names, Yes/No, a 1-5 rating, a count, text and a domain, no Python."""
    config = json.loads(json.dumps(BASE))
    config["experiment"]["features"] = [
        {"name": "Clothing ID", "kind": "categorical", "embedding_dim": 4},
        {"name": "Age", "kind": "numeric"},
        {"name": "Review Text", "kind": "text", "embedding_dim": 8, "ngrams": 2},
        {"name": "Division Name", "kind": "categorical", "embedding_dim": 2},
    ]
    config["experiment"]["tasks"] = [
        {"name": "recommended", "label": "Recommended IND", "kind": "binary", "positive": ["Yes"]},
        {"name": "rating", "label": "Rating", "kind": "multiclass", "classes": "auto"},
        {"name": "feedback", "label": "Positive Feedback Count", "kind": "count"},
    ]
    config["models"] = [{"name": "single_task", "model": {"kind": "single_task", "bottom": {"units": [16]}}},
                        {"name": "mmoe", "model": {"kind": "mmoe", "num_experts": 2, "expert": {"units": [16]}}}]
    _, path = _write(tmp_path, reviews(), config)
    evaluation = _pipeline(tmp_path, capsys, path)

    assert evaluation["pipeline"] == "reviews"  # named after the file
    assert evaluation["rows"] == {"train": 1200, "valid": 400, "test": 400}
    lgb = evaluation["references"]["lightgbm"]
    assert set(lgb["metrics"]) == {"recommended", "rating", "feedback"}
    # The text carries the signal: LightGBM reads it as a bag of words and bigrams.
    assert lgb["info"]["inputs"]["tokens"]["Review Text"] > 20
    assert lgb["metrics"]["recommended"]["auc"]["mean"] > 0.7  # only the text predicts it
    constant = evaluation["references"]["constant"]["metrics"]
    assert lgb["metrics"]["rating"]["accuracy"]["mean"] > constant["rating"]["accuracy"]["mean"]
    assert lgb["metrics"]["feedback"]["rmse"]["mean"] < constant["feedback"]["rmse"]["mean"]
    for model in ("single_task", "mmoe"):
        assert set(evaluation["models"][model]["metrics"]) == {"recommended", "rating", "feedback"}
        assert "recommended" in evaluation["models"][model]["gain"]


def test_own_table_with_plain_keys(tmp_path, capsys):
    """The same table through the plain keys: 0/1 and 0-4 label columns, a regression for the count,
    the text as a multi-valued column of space-separated tokens (LightGBM's bag of tokens from
    `split_cells`), explicit `table:` names."""
    table = reviews()
    table["Recommended"] = (table.pop("Recommended IND") == "Yes").astype(int)
    table["Rating 0-4"] = table.pop("Rating") - 1
    config = json.loads(json.dumps(BASE))
    config["experiment"]["features"] = [
        {"name": "Clothing ID", "kind": "categorical", "embedding_dim": 4, "table": "clothing_id"},
        {"name": "Age", "kind": "numeric"},
        {"name": "Review Text", "kind": "multi_categorical", "separator": " ", "embedding_dim": 8,
         "table": "review_text"},
        {"name": "Division Name", "kind": "categorical", "embedding_dim": 2, "table": "division"},
    ]
    config["experiment"]["tasks"] = [
        {"name": "recommended", "label": "Recommended", "kind": "binary"},
        {"name": "rating", "label": "Rating 0-4", "kind": "multiclass", "num_classes": 5},
        {"name": "feedback", "label": "Positive Feedback Count", "kind": "regression"},
    ]
    config["models"] = [{"name": "single_task", "model": {"kind": "single_task", "bottom": {"units": [16]}}}]
    _, path = _write(tmp_path, table, config)
    evaluation = _pipeline(tmp_path, capsys, path)

    lgb = evaluation["references"]["lightgbm"]
    constant = evaluation["references"]["constant"]["metrics"]
    # "it's" and "it." are two tokens (their cleaned names collided before); all kept, not a top 100.
    assert lgb["info"]["inputs"]["tokens"]["Review Text"] > 20
    assert lgb["metrics"]["recommended"]["auc"]["mean"] > 0.7  # only the text predicts it
    assert lgb["metrics"]["rating"]["accuracy"]["mean"] > constant["rating"]["accuracy"]["mean"]
    assert evaluation["models"]["single_task"]["metrics"]["recommended"]["auc"]["mean"] > 0.5


def test_seeds_and_scoring_the_runs_own_test_rows(tmp_path, capsys):
    """`mtrec train --seeds 1 2` writes a run per seed and the mean ± sd; each run keeps its split rows,
    and `mtrec score --split test` scores exactly them, reproducing the run's own test AUC."""
    from sklearn.metrics import roc_auc_score

    table = reviews(1000)
    table["recommended"] = (table["Recommended IND"] == "Yes").astype(int)
    table["review_id"] = np.arange(len(table)) * 7 + 3
    data = tmp_path / "reviews.parquet"
    table.to_parquet(data)
    config = {
        "name": "reviews", "seed": 0,
        "data": {"path": str(data), "id_columns": ["review_id"],
                 "split": {"kind": "random", "fractions": [0.6, 0.2, 0.2], "seed": 7}},
        "features": [{"name": "Age", "kind": "numeric"},
                     {"name": "Division Name", "kind": "categorical", "table": "division"}],
        "tasks": [{"name": "recommended", "kind": "binary"}],
        "model": {"kind": "shared_bottom", "bottom": {"units": [8]}},
        "training": {"epochs": 1, "batch_size": 128, "verbose": 0, "jit_compile": False},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    assert main(["train", "-c", str(path), "--run-dir", str(runs), "--seeds", "1", "2"]) == 0
    capsys.readouterr()
    summary = json.loads((runs / "seeds.json").read_text())
    values = summary["metrics"]["recommended"]["auc"]["values"]
    assert summary["seeds"] == [1, 2] and len(values) == 2
    assert summary["metrics"]["recommended"]["auc"]["mean"] == pytest.approx(np.mean(values))
    assert summary["metrics"]["recommended"]["auc"]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert "± " in (runs / "seeds.md").read_text()

    run = runs / "seed2"
    splits = pd.read_parquet(run / "splits.parquet")
    assert splits["split"].value_counts().to_dict() == {"train": 600, "valid": 200, "test": 200}
    assert sorted(splits["row"]) == list(range(1000))  # every row once
    assert (splits["review_id"].to_numpy() == table["review_id"].to_numpy()[splits["row"]]).all()

    out = tmp_path / "test_scores.parquet"
    assert main(["score", "--split", "test", str(run), str(out)]) == 0
    scores = pd.read_parquet(out)
    test_rows = splits.loc[splits["split"] == "test", "row"].to_numpy()
    assert list(scores["row"]) == list(test_rows)
    assert list(scores["review_id"]) == list(table["review_id"].to_numpy()[test_rows])
    report = json.loads((run / "report.json").read_text())
    auc = roc_auc_score(table["recommended"].to_numpy()[test_rows], scores["recommended"])
    assert auc == pytest.approx(report["test"]["recommended"]["auc"], abs=2e-3)

    # A changed table is refused rather than scored on the wrong rows.
    table.iloc[:-1].to_parquet(data)
    assert main(["score", "--split", "test", str(run), str(tmp_path / "again.parquet")]) == 2
    assert "the table changed" in capsys.readouterr().err


def test_score_split_refuses_a_run_without_a_table_to_read_back(tmp_path):
    """A run trained on a DataFrame has no data.path to read its rows from: named, not guessed."""
    from mtrec.errors import DataError
    from mtrec.scoring.run_split import score_split
    from mtrec.training.split_rows import SPLITS_FILE, SPLITS_INFO

    (tmp_path / SPLITS_INFO).write_text(json.dumps({"source": "frame", "path": None, "rows": 3,
                                                    "id_columns": []}))
    pd.DataFrame({"split": ["train", "valid", "test"], "row": [0, 1, 2]}).to_parquet(tmp_path / SPLITS_FILE)
    with pytest.raises(DataError, match="DataFrame passed to train"):
        score_split(tmp_path, tmp_path / "out.parquet")
    with pytest.raises(DataError, match="has no splits.parquet"):
        score_split(tmp_path / "elsewhere", tmp_path / "out.parquet")

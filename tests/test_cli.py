"""The `mtrec` command: train, score, synthetic, quickstart, and error exits."""

import pandas as pd

from mtrec.cli import main
from mtrec.quickstart import run_quickstart
from tests.conftest import REPO

SMALL = ["data.synthetic.n_rows=800", "training.epochs=2", "training.verbose=0"]


def test_train_then_score(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "-c", str(REPO / "configs/quickstart.yaml"), "--run-dir", str(run_dir), *SMALL]) == 0
    assert "| y0" in capsys.readouterr().out
    assert main(["synthetic", str(tmp_path / "rows.parquet"), "--rows", "300"]) == 0
    assert main(["score", str(run_dir), str(tmp_path / "rows.parquet"), str(tmp_path / "s.parquet"),
                 "--no-progress"]) == 0
    scores = pd.read_parquet(tmp_path / "s.parquet")
    assert list(scores.columns) == ["y0", "y1"] and len(scores) == 300
    # A second train into the same directory refuses, with exit status 2 and a clear message.
    assert main(["train", "-c", str(REPO / "configs/quickstart.yaml"), "--run-dir", str(run_dir), *SMALL]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_bad_config_key_exits_2_and_names_it(tmp_path, capsys):
    code = main(["train", "-c", str(REPO / "configs/quickstart.yaml"), "--run-dir", str(tmp_path / "r"),
                 "model.num_expert=4"])
    assert code == 2
    assert "model.num_expert" in capsys.readouterr().err


def test_score_missing_input_names_the_file(tmp_path, capsys):
    run_dir = tmp_path / "run"
    main(["train", "-c", str(REPO / "configs/quickstart.yaml"), "--run-dir", str(run_dir), *SMALL])
    assert main(["score", str(run_dir), str(tmp_path / "nope.parquet"), str(tmp_path / "o.parquet")]) == 2
    assert "nope.parquet" in capsys.readouterr().err


def test_quickstart_compares_both_models_at_both_correlations(tmp_path):
    rows = run_quickstart(tmp_path, overrides=SMALL)
    assert [(r["correlation"], r["model"]) for r in rows] == [
        ("0.5", "shared_bottom"), ("0.5", "mmoe"), ("0.9", "shared_bottom"), ("0.9", "mmoe")]
    assert all("y0 R2" in r and "y1 RMSE" in r for r in rows)

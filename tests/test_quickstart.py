"""The quickstart: MMoE vs SharedBottom vs SingleTask on the paper's synthetic data, over seeds."""

import json
import statistics

import pytest
import yaml

from mtrec.config import parse_config
from mtrec.quickstart import (
    QUICKSTART_CONFIG, QUICKSTART_MODELS, SHARED_BOTTOM_MODEL, SINGLE_TASK_MODEL, describe_quickstart,
    print_quickstart, quickstart_configs, run_quickstart, summarize_quickstart,
)
from tests.conftest import REPO

#: A quick budget: 1,000 rows, 3 epochs.
QUICK = ["data.synthetic.n_rows=1000", "training.epochs=3"]


def test_configs_share_data_and_seed_and_mirror_the_shipped_files():
    configs = quickstart_configs(1, QUICK)
    assert list(configs) == ["mmoe", "shared_bottom", "single_task"]
    parsed = {k: parse_config(raw) for k, raw in configs.items()}
    assert [c.model.kind for c in parsed.values()] == list(configs)
    # The three models see the same rows: only the model differs.
    for raw in configs.values():
        assert {k: v for k, v in raw.items() if k != "model"} == {
            k: v for k, v in configs["mmoe"].items() if k != "model"}
    assert configs["mmoe"]["seed"] == 1 and configs["mmoe"]["data"]["synthetic"]["seed"] == 1
    assert configs["mmoe"]["data"]["synthetic"]["n_rows"] == 1000
    assert configs["mmoe"]["data"]["synthetic"]["correlation"] == 0.5
    # The models are those of the shipped configs.
    assert QUICKSTART_MODELS["mmoe"] == QUICKSTART_CONFIG["model"]
    for name, model in (("synthetic_shared_bottom", SHARED_BOTTOM_MODEL), ("synthetic_single_task", SINGLE_TASK_MODEL)):
        assert yaml.safe_load((REPO / f"configs/{name}.yaml").read_text())["model"] == model
    assert "2,000 rows of 16 features (1,600 to train); seeds 0, 1, 2" in describe_quickstart()


def test_quickstart_trains_three_models_per_seed_and_summarizes_them(tmp_path, capsys):
    rows = run_quickstart(tmp_path, seeds=(0, 1), overrides=QUICK, progress=False)
    assert [(r["seed"], r["model"]) for r in rows] == [
        (s, m) for s in (0, 1) for m in ("mmoe", "shared_bottom", "single_task")]
    constant = {}
    for row in rows:
        test = json.loads((tmp_path / f"seed{row['seed']}" / row["model"] / "report.json").read_text())["test"]
        # The row's numbers are the run directory's: R² per task, MSE = mean of the squared RMSEs.
        assert row["y0 R2"] == pytest.approx(test["y0"]["r2"]) and row["y1 R2"] == pytest.approx(test["y1"]["r2"])
        assert row["test MSE"] == pytest.approx((test["y0"]["rmse"] ** 2 + test["y1"]["rmse"] ** 2) / 2)
        assert 1 <= row["epochs"] <= 3
        constant.setdefault(row["seed"], set()).add(
            round((test["y0"]["constant_baseline"]["rmse"] ** 2 + test["y1"]["constant_baseline"]["rmse"] ** 2) / 2, 9))
    # The three models of a seed are tested on the same rows (one constant baseline), each seed on new rows.
    assert all(len(values) == 1 for values in constant.values()) and constant[0] != constant[1]
    # Even at this budget the best model of each seed beats predicting the training mean.
    for seed in (0, 1):
        assert min(r["test MSE"] for r in rows if r["seed"] == seed) < min(constant[seed])

    summary = summarize_quickstart(rows)
    assert [s["model"] for s in summary] == ["mmoe", "shared_bottom", "single_task"]
    for s in summary:
        values = [r["test MSE"] for r in rows if r["model"] == s["model"]]
        assert s["test MSE"] == f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"
    best = {}
    for seed in (0, 1):
        winner = min((r for r in rows if r["seed"] == seed), key=lambda r: r["test MSE"])["model"]
        best[winner] = best.get(winner, 0) + 1
    assert [s["best on"] for s in summary] == [f"{best.get(m, 0)} of 2 seeds" for m in QUICKSTART_MODELS]
    # Paired by seed: each model's test MSE over MMoE's on the same data.
    mse = {(r["model"], r["seed"]): r["test MSE"] for r in rows}
    ratios = [mse["single_task", s] / mse["mmoe", s] for s in (0, 1)]
    assert summary[2]["MSE / MMoE's"] == f"{statistics.fmean(ratios):.3f} ± {statistics.stdev(ratios):.3f}"
    assert summary[0]["MSE / MMoE's"] == "1.000 ± 0.000"

    print_quickstart(rows)
    out = capsys.readouterr().out
    assert "mean ± sd over 2 seeds" in out and "| single_task" in out and "negative transfer" in out

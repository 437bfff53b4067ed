"""The quickstart: MMoE vs SharedBottom vs SingleTask on the paper's synthetic data, over seeds."""

import json
import statistics

import pytest
import yaml

from mtrec.config import parse_config
from mtrec.quickstart import (
    QUICKSTART_CONFIG, QUICKSTART_MODELS, SHARED_BOTTOM_MODEL, SINGLE_TASK_MODEL, describe_quickstart,
    print_quickstart, quickstart_configs, quickstart_verdict, run_quickstart, summarize_quickstart,
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
    # Paired by seed: each model's test MSE over SingleTask's (learning alone) on the same data.
    mse = {(r["model"], r["seed"]): r["test MSE"] for r in rows}
    ratios = [mse["mmoe", s] / mse["single_task", s] for s in (0, 1)]
    assert summary[0]["MSE / SingleTask's"] == f"{statistics.fmean(ratios):.3f} ± {statistics.stdev(ratios):.3f}"
    assert summary[2]["MSE / SingleTask's"] == "1.000 ± 0.000"

    print_quickstart(rows)
    out = capsys.readouterr().out
    assert "mean ± sd over 2 seeds" in out and "| single_task" in out
    # The closing sentences are those computed from these runs.
    assert out.rstrip().endswith(quickstart_verdict(rows))


def _rows(mse_by_seed):
    """Quickstart rows from {seed: (mmoe, shared_bottom, single_task) test MSE}."""
    return [{"model": m, "seed": s, "y0 R2": 0.5, "test MSE": v}
            for s, values in mse_by_seed.items() for m, v in zip(QUICKSTART_MODELS, values)]


def test_verdict_follows_the_numbers_not_a_fixed_ranking():
    # MMoE lowest everywhere, SharedBottom far worse than learning alone on every seed.
    verdict = quickstart_verdict(_rows({0: (0.1, 0.4, 0.2), 1: (0.2, 0.9, 0.4), 2: (0.05, 0.2, 0.1)}))
    lines = verdict.splitlines()
    assert lines[0] == "MMoE has the lowest test MSE on every seed (3)."
    assert lines[1].startswith("MMoE's test MSE is 0.50 ± 0.00 times SingleTask's") and "sharing helped" in lines[1]
    assert lines[2].startswith("SharedBottom's test MSE is 2.08 ± 0.14 times") and "sharing hurt" in lines[2]
    # Mixed winners, and ratios whose spread straddles 1: no claim either way.
    verdict = quickstart_verdict(_rows({0: (0.5, 0.3, 0.4), 1: (0.1, 0.09, 0.1), 2: (0.03, 0.04, 0.02)}))
    assert verdict.splitlines()[0] == (
        "No model has the lowest test MSE on every seed (best on: MMoE 0, SharedBottom 2, SingleTask 1 of 3).")
    assert verdict.count("no clear gain or loss from sharing") == 2 and "MMoE has" not in verdict
    summary = summarize_quickstart(_rows({0: (0.5, 0.3, 0.4), 1: (0.1, 0.09, 0.1), 2: (0.03, 0.04, 0.02)}))
    assert [s["best on"] for s in summary] == ["0 of 3 seeds", "2 of 3 seeds", "1 of 3 seeds"]

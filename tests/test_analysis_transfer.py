"""The transfer report against a hand computation on fixed metric files, and label correlation."""

import json

import numpy as np
import pytest
import yaml

from mtrec.analysis.plots import plot_transfer
from mtrec.analysis.relationships import correlation_matrix, label_correlation, pair_correlation
from mtrec.analysis.transfer import relative_gain, transfer_between_runs, transfer_report
from mtrec.cli import main
from mtrec.errors import DataError

# Fixed per-task test metrics of a multi-task run and its SingleTask baseline.
MTL = {"test": {
    "click": {"count": 100, "auc": 0.78, "logloss": 0.40, "constant_baseline": {"auc": 0.5}},
    "buy": {"count": 100, "auc": 0.70, "logloss": 0.20},
    "dwell": {"count": 90, "rmse": 1.10, "mae": 0.80, "r2": 0.30},
    "aux": {"count": 100, "auc": 0.60},
}}
SINGLE = {"test": {
    "click": {"count": 100, "auc": 0.75, "logloss": 0.42},
    "buy": {"count": 100, "auc": 0.72, "logloss": 0.21},
    "dwell": {"count": 90, "rmse": 1.00, "mae": 0.85, "r2": 0.35},
    "aux": {"count": 100, "auc": 0.61},
}}


def _write_run(path, report, aux=()):
    path.mkdir(parents=True)
    (path / "report.json").write_text(json.dumps(report))
    tasks = [{"name": t, "kind": "binary", "auxiliary": t in aux} for t in report["test"]]
    (path / "config.yaml").write_text(yaml.safe_dump({"tasks": tasks}))
    return path


@pytest.fixture
def runs(tmp_path):
    return (_write_run(tmp_path / "mtl", MTL, aux=("aux",)), _write_run(tmp_path / "st", SINGLE))


def test_gains_and_delta_m_match_a_hand_computation(runs):
    report = transfer_between_runs(*runs)
    # By hand: AUC is higher-better, RMSE lower-better; the auxiliary task is left out.
    click = (0.78 - 0.75) / 0.75 * 100   # +4.0
    buy = (0.70 - 0.72) / 0.72 * 100     # -2.78
    dwell = -(1.10 - 1.00) / 1.00 * 100  # -10.0
    gains = {r.task: r.gain for r in report.rows}
    assert gains == pytest.approx({"click": click, "buy": buy, "dwell": dwell})
    assert report.delta_m == pytest.approx((click + buy + dwell) / 3)
    assert report.negative_tasks == ["buy", "dwell"]
    assert [r.metric for r in report.rows] == ["auc", "auc", "rmse"]
    assert "Δm = " in report.to_markdown() and "buy, dwell" in report.to_markdown()


def test_metric_choice_and_tolerance():
    report = transfer_report(MTL, SINGLE, metrics={"click": "logloss", "dwell": "mae"}, tasks=["click", "dwell"],
                             tolerance=5.0)
    assert report.rows[0].gain == pytest.approx(-(0.40 - 0.42) / 0.42 * 100)
    assert report.rows[1].gain == pytest.approx(-(0.80 - 0.85) / 0.85 * 100)
    assert report.negative_tasks == []
    assert relative_gain(0.9, 1.0, lower_better=True) == pytest.approx(10.0)


@pytest.mark.parametrize("mutate, message", [
    (lambda st: st["test"].pop("buy"), "Task 'buy' is missing from the single-task"),
    (lambda st: st["test"]["dwell"].pop("rmse"), "Metric 'rmse' of task 'dwell'"),
    (lambda st: st.pop("test"), "no 'test' split"),
    (lambda st: st["test"]["click"].update(auc=0.0), "undefined"),
])
def test_missing_pieces_are_named(mutate, message):
    single = json.loads(json.dumps(SINGLE))
    mutate(single)
    with pytest.raises(DataError, match=message):
        transfer_report(MTL, single)


def test_missing_report_file_is_named(tmp_path):
    with pytest.raises(DataError, match="report.json not found"):
        transfer_between_runs(tmp_path, tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        transfer_between_runs(tmp_path, tmp_path)


def test_one_single_task_run_per_task_is_merged(tmp_path):
    mtl = _write_run(tmp_path / "mtl", {"test": {k: MTL["test"][k] for k in ("click", "buy")}})
    a = _write_run(tmp_path / "a", {"test": {"click": SINGLE["test"]["click"]}})
    b = _write_run(tmp_path / "b", {"test": {"buy": SINGLE["test"]["buy"]}})
    assert [r.task for r in transfer_between_runs(mtl, [a, b]).rows] == ["click", "buy"]
    with pytest.raises(DataError, match="more than one"):
        transfer_between_runs(mtl, [a, a])


def test_transfer_command_prints_and_writes_a_chart(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["transfer", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "click" in printed and "Δm = -2.93%" in printed
    saved = json.loads((out / "transfer.json").read_text())
    assert saved["delta_m"] == pytest.approx(transfer_between_runs(*runs).delta_m)
    assert (out / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["transfer", str(runs[0]), str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err


def test_transfer_chart_has_one_bar_per_task(runs):
    fig = plot_transfer(transfer_between_runs(*runs))
    assert len(fig.axes[0].patches) == 3


# -- label correlation -------------------------------------------------------------------


def test_label_correlation_is_pearson_and_phi_for_binary_pairs():
    rng = np.random.default_rng(0)
    a = rng.normal(size=500)
    b = 0.6 * a + 0.8 * rng.normal(size=500)
    click = (a > 0).astype(float)
    buy = ((a + rng.normal(size=500)) > 1).astype(float)
    buy[:50] = np.nan  # missing labels drop only those rows
    pairs = label_correlation({"a": a, "b": b, "click": click, "buy": buy})
    ab = pairs[(pairs.task_a == "a") & (pairs.task_b == "b")].iloc[0]
    assert ab.method == "pearson" and ab.correlation == pytest.approx(np.corrcoef(a, b)[0, 1])
    cb = pairs[(pairs.task_a == "click") & (pairs.task_b == "buy")].iloc[0]
    # phi from the 2x2 table, by hand.
    x, y = click[50:], buy[50:]
    n11, n10 = np.sum((x == 1) & (y == 1)), np.sum((x == 1) & (y == 0))
    n01, n00 = np.sum((x == 0) & (y == 1)), np.sum((x == 0) & (y == 0))
    phi = (n11 * n00 - n10 * n01) / np.sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00))
    assert cb.method == "phi" and cb.rows == 450 and cb.correlation == pytest.approx(phi)
    matrix = correlation_matrix(pairs, ["a", "b", "click", "buy"])
    assert matrix.loc["b", "a"] == matrix.loc["a", "b"] and matrix.loc["a", "a"] == 1.0


def test_constant_or_skipped_labels_give_nan():
    assert np.isnan(pair_correlation(np.ones(10), np.arange(10.0))[0])
    pairs = label_correlation({"a": np.arange(5.0), "genre": np.arange(5.0)}, skip={"genre"})
    assert pairs.iloc[0].method == "skipped" and np.isnan(pairs.iloc[0].correlation)

"""The benchmarks (`python -m benchmarks.NAME`): tiny runs end to end, their configs, and one shared harness.

The figures themselves come from full runs (README, docs/model_family.md);
these tests check that each benchmark still runs against the current library
and writes its JSON.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from benchmarks import esmm, family, harness, retrieval_anchor, speed, split_seeds, weighting
from mtrec.config import apply_overrides, parse_config
from mtrec.quickstart import QUICKSTART_CONFIG
from tests.conftest import REPO

BENCHMARKS = [speed, weighting, family, esmm, retrieval_anchor]


def test_speed_runs_and_writes_its_json(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert speed.main(["--rows", "2000", "--features", "8", "--epochs", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["rows"] == 2000 and set(result["ratios"]) == {
        "train", "score_vs_keras_defaults", "score_vs_same_batch"}
    assert result["params"]["mtrec"] > 0 and result["machine"]["cpus"] >= 1
    printed = capsys.readouterr().out
    assert "| train examples/s (after epoch 1)" in printed and f"Wrote {out}" in printed


def test_weighting_times_static_and_the_chosen_variants(tmp_path):
    out = tmp_path / "weighting.json"
    assert weighting.main(["--rows", "2000", "--features", "8", "--repeats", "1", "--only", "dwa",
                           "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["variant"] for r in results] == ["static", "dwa"]
    assert results[0]["ratio_to_static_min"] == 1.0
    assert all(r["ms_per_step_min"] > 0 and r["cpu_ms_per_step_median"] > 0 for r in results)


def test_esmm_runs_and_writes_its_json(tmp_path):
    out = tmp_path / "esmm.json"
    assert esmm.main(["--rows", "1500", "--seeds", "1", "--shifts", "-1.0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["clicked_test_rows"] > 0 and 0 <= run["esmm_auc_clicked"] <= 1
    assert run["joint_exceeds_click"] == 0  # the chained tower's joint never exceeds p(click)


@pytest.mark.parametrize("label", list(family.MODELS))
def test_every_family_variant_is_a_valid_experiment(label):
    raw = apply_overrides(QUICKSTART_CONFIG, ["training.verbose=0"])
    raw["model"] = {**family.MODELS[label], "tower_units": [8]}
    assert parse_config(raw).model.kind == family.MODELS[label]["kind"]


def test_family_summary_is_mean_and_sd_per_correlation():
    runs = [{"model": "mmoe", "correlation": 0.5, "seed": s, "parameters": 10, "y0_r2": r, "y1_r2": 2 * r}
            for s, r in ((1, 0.2), (2, 0.4))]
    (row,) = family.summarize(runs)
    # mean 0.3, population sd 0.1 of (0.2, 0.4); y1 doubles both.
    assert row == {"model": "mmoe", "y0 R² @0.5": "0.300 ± 0.100", "y1 R² @0.5": "0.600 ± 0.200", "params": 10}


def test_split_seeds_summary_is_mean_and_sd_over_splits_with_paired_gains():
    def evaluation(base, mmoe, lgb):  # one split's evaluation.json, the fields the summary reads
        gain = {"visit": {"metric": "auc", "unit": "percent", "value": 100 * (mmoe / base - 1)}}
        return {"pipeline": "p", "baseline": "single_task", "seeds": [1, 2], "rows": {"test": 10},
                "report_metrics": {"visit": ["auc"]},
                "models": {"single_task": {"metrics": {"visit": {"auc": {"mean": base}}}, "gain": {}},
                           "mmoe": {"metrics": {"visit": {"auc": {"mean": mmoe}}}, "gain": gain}},
                "references": {"lightgbm": {"metrics": {"visit": {"auc": {"mean": lgb}}}, "gain": {}}}}

    rows, result = split_seeds.summarize([evaluation(0.60, 0.63, 0.61), evaluation(0.70, 0.70, 0.69)])
    assert [r["model"] for r in rows] == ["single_task (baseline)", "mmoe", "lightgbm"]
    # mean 0.65 and sample sd 0.0707 of (0.60, 0.70); mmoe's gains +5% and 0% average to +2.5%.
    assert rows[0]["visit auc"] == "0.6500 ± 0.0707" and rows[0]["visit gain"] == ""
    assert rows[1]["visit auc"] == "0.6650 ± 0.0495" and rows[1]["visit gain"] == "+2.50% ± 3.54%"
    assert rows[2]["visit auc"] == "0.6500 ± 0.0566" and rows[2]["visit gain"] == "-"
    assert result["per_split"]["mmoe"]["visit auc"] == [0.63, 0.70]


def test_retrieval_anchor_rows_and_table():
    rows = retrieval_anchor.settings_to_run("tutorial")
    assert [name for name, _ in rows] == ["tutorial (1, 1)", "tutorial (1, 0)", "tutorial (0, 1)"]
    assert retrieval_anchor.settings_to_run(None, match="features")[0][0].startswith("ours: features")
    runs = [{"setting": "tutorial (1, 1)", "seed": 42, "rating_weight": 1.0, "retrieval_weight": 1.0,
             "train_seconds": 3.0, "top_100_accuracy": 0.23, "rmse": 1.1}]
    (row,) = retrieval_anchor.table_rows(retrieval_anchor.summarize(runs))
    assert row["top-100 acc"] == "0.230 ± 0.000" and row["published top-100"] == 0.235


def test_benchmarks_share_only_the_harness():
    modules = sorted(p for p in (REPO / "benchmarks").glob("*.py") if p.stem not in ("__init__", "harness"))
    assert {p.stem for p in modules} >= {m.__name__.split(".")[-1] for m in BENCHMARKS}
    for path in modules:
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert {m for m in imported if m.startswith("benchmarks")} == {"benchmarks.harness"}, path.name
    assert harness.machine_info()["backend"]
    assert not (REPO / "mtrec" / "bench.py").exists()


def test_a_benchmark_prints_no_tensorflow_start_up_lines():
    # Without the quieting, TensorFlow writes its CUDA probing and absl preamble to stderr here.
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MTREC_QUIET_FRAMEWORK_LOGS")}
    code = "import benchmarks, tensorflow as tf; print(float(tf.constant(1.0) + 1))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "2.0", done.stderr
    assert done.stderr.strip() == ""

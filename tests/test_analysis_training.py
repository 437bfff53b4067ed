"""Gate analysis of trained models: the callbacks in a run, the collapse alarm, PLE levels, `mtrec gates`."""

import json

import keras
import numpy as np
import pytest

from conftest import built_model
from mtrec.analysis import (
    GradientCosineLogger, analyze_gates, analyze_run_gates, check_collapse, collect_gates, gradient_cosines, saturate_gates,
)
from mtrec.cli import main
from mtrec.config import apply_overrides, parse_config
from mtrec.data.io import write_parquet
from mtrec.data.synthetic import make_synthetic
from mtrec.data.tf_dataset import make_dataset
from mtrec.errors import ConfigError
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.training.prepare import prepare
from mtrec.training.run import build_model, compile_model, train

FAST = ["training.epochs=4", "data.synthetic.n_rows=2000", "training.verbose=0", "training.early_stopping=null"]


def _config(*overrides):
    return parse_config(apply_overrides(QUICKSTART_CONFIG, [*FAST, *overrides]))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """A trained MMoE whose run records gate statistics and gradient cosines."""
    config = _config("training.analysis.gate_stats=true", "training.analysis.gradient_cosine=true",
                     "training.analysis.rows=256")
    return train(config, tmp_path_factory.mktemp("mmoe"))


def test_run_records_gate_stats_and_gradient_cosines_per_epoch(healthy):
    metrics = json.loads((healthy.run_dir / "metrics.json").read_text())
    assert len(metrics) == 4
    for epoch in metrics:
        gates = epoch["valid"]["y0"]  # computed on validation rows
        shares = [gates[f"gate_util_e{j}"] for j in range(8)]
        assert sum(shares) == pytest.approx(1.0, abs=1e-5)
        assert 1.0 <= gates["gate_effective_experts"] <= 8.0
        assert gates["gate_effective_experts"] == pytest.approx(np.exp(gates["gate_entropy"]), rel=1e-6)
        assert -1.0 <= epoch["train"]["total"]["grad_cosine_y0_y1"] <= 1.0
    # The last epoch's values are those of the final model on the same rows.
    levels = collect_gates(healthy.model, _valid_sample(healthy, 256))
    util = levels[0].gates["y0"].mean(axis=0)
    np.testing.assert_allclose([metrics[-1]["valid"]["y0"][f"gate_util_e{j}"] for j in range(8)], util, atol=1e-5)


def _valid_sample(result, rows):
    from mtrec.training.analysis_loggers import sample_rows
    return sample_rows(result.prepared.splits["valid"].features, rows)


def test_gate_stats_reach_tensorboard(healthy):
    import tensorflow as tf

    tags = set()
    for path in (healthy.run_dir / "tensorboard" / "validation").glob("events*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(v.tag for v in event.summary.value)
    assert {"epoch_y0_gate_entropy", "epoch_y1_gate_util_e3"} <= tags


def test_alarm_is_quiet_on_a_healthy_model_and_fires_on_an_induced_collapse(healthy):
    test = healthy.prepared.splits["test"].features
    assert not check_collapse(collect_gates(healthy.model, test)[0]).fired

    # Induced collapse: a tiny gate temperature turns a 2-logit lead for expert 0 into a
    # saturated softmax; its gradient vanishes, so training keeps every task on expert 0.
    config = _config("model.gate_temperature=0.05")
    keras.utils.set_random_seed(0)
    model, prepared = built_model(config)
    train_split = prepared.splits["train"]
    assert saturate_gates(model, expert=0, margin=2.0) == 2
    compile_model(model, config)
    model.fit(make_dataset(train_split.features, train_split.labels, 256, shuffle=True, seed=0),
              epochs=4, verbose=0, shuffle=False)
    alarm = check_collapse(collect_gates(model, test)[0])
    assert alarm.fired
    assert {e for e, _ in alarm.dominant.values()} == {"e0"}
    assert alarm.dead_experts == [f"e{j}" for j in range(1, 8)]


def test_gradient_cosine_is_one_for_identical_tasks_and_minus_one_for_opposed_ones():
    # A shared bottom whose two towers hold the same weights: both tasks predict the same (on the
    # labels' own scale: standardization would rescale each task's output by its own sd).
    config = _config("model={kind: shared_bottom, bottom: {units: [16]}, tower_units: [4]}",
                     "tasks=[{name: y0, kind: regression, standardize: false}, "
                     "{name: y1, kind: regression, standardize: false}]")
    model, prepared = built_model(config)
    split = prepared.splits["train"]
    model.towers[1].set_weights(model.towers[0].get_weights())
    x = {k: v[:256] for k, v in split.features.items()}
    y0 = split.labels["y0"][:256]
    cosines = gradient_cosines(model, x, {"y0": y0, "y1": y0.copy()})
    assert cosines[("y0", "y1")] == pytest.approx(1.0, abs=1e-5)
    opposite = gradient_cosines(model, x, {"y0": y0, "y1": -y0 + 2 * model.predict(x, verbose=0)["y1"]})
    # The second task's residual is the first's negated: gradients point opposite ways.
    assert opposite[("y0", "y1")] == pytest.approx(-1.0, abs=1e-4)


def test_gate_stats_need_a_gated_model(tmp_path):
    config = _config("model={kind: shared_bottom}", "training.analysis.gate_stats=true", "training.epochs=1")
    with pytest.raises(ConfigError, match="gate_stats needs a gated model"):
        train(config, tmp_path)
    with pytest.raises(ConfigError, match="training.analysis.rows"):
        _config("training.analysis.rows=0")


def test_ple_gates_are_analysed_per_level():
    config = _config("model={kind: ple, num_levels: 2, num_shared_experts: 2, num_task_experts: 1}")
    prepared = prepare(config)
    model = build_model(config, prepared.encoder.layout())
    analysis = analyze_gates(model, prepared.splits["test"].features)
    assert [lv.level for lv in analysis.levels] == ["level0", "level1"]
    level0 = analysis.levels[0]
    assert level0.experts["y0"] == ["y0/e0", "shared/e0", "shared/e1"]
    assert level0.experts["shared"] == ["y0/e0", "y1/e0", "shared/e0", "shared/e1"]
    assert "shared" not in analysis.levels[1].gates
    assert len(analysis.alarms) == 2 and not analysis.collapsed
    json.dumps(analysis.to_dict())  # serializable as is


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    frame = make_synthetic(600, correlation=0.9, seed=11)
    frame["region"] = np.where(frame["x0"] > 0.5, "north", np.where(frame["x0"] < -0.5, "south", "centre"))
    return write_parquet(frame, tmp_path_factory.mktemp("data") / "rows.parquet")


def test_gates_command_prints_and_writes_plots(healthy, data_file, tmp_path, capsys):
    out = tmp_path / "gates"
    code = main(["gates", str(healthy.run_dir), str(data_file), "--by", "region", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Expert utilization" in printed and "Collapse alarm: quiet" in printed and "north" in printed
    report = json.loads((out / "gates.json").read_text())
    assert report["rows"] == 600 and report["segment_column"] == "region"
    segments = {row["segment"] for row in report["levels"][0]["segments"]}
    assert segments == {"north", "south", "centre"}
    pngs = {p.name for p in out.glob("*.png")}
    assert {"utilization.png", "entropy.png", "segments_y0.png", "segments_y1.png"} <= pngs
    # A numeric column is cut into quantile buckets.
    by_x1 = analyze_run_gates(healthy.run_dir, data_file, by="x1", bins=3)
    assert len(set(by_x1.segments[""]["segment"])) == 3


def test_fail_on_collapse_sets_the_exit_status(healthy, data_file, tmp_path, capsys):
    args = ["gates", str(healthy.run_dir), str(data_file), "--out", str(tmp_path), "--fail-on-collapse"]
    assert main(args) == 0
    # A dominant-share threshold below every task's top share makes the alarm fire.
    assert main([*args, "--dominant-share", "0.01"]) == 1
    assert "Collapse alarm: FIRED" in capsys.readouterr().out


def test_gradient_cosine_logger_records_before_training_and_every_k_batches():
    config = _config("training.steps_per_execution=1")
    model, prepared = built_model(config)
    split = prepared.splits["train"]
    compile_model(model, config)
    sample = {k: v[:128] for k, v in split.features.items()}
    logger = GradientCosineLogger(sample, {k: v[:128] for k, v in split.labels.items()}, every_batches=5)
    model.fit(make_dataset(split.features, split.labels, 256, shuffle=True, seed=0), epochs=2, verbose=0,
              callbacks=[logger], shuffle=False)
    steps = [row["step"] for row in logger.history]
    # 1,600 training rows in batches of 256: 7 batches per epoch, 14 in all.
    assert steps[0] == 0 and logger.history[0]["epoch"] == -1
    assert steps == [0, 5, 7, 10, 14]  # after batches 5 and 10, and at each epoch's end (7, 14)
    assert all(-1 <= row["grad_cosine_y0_y1"] <= 1 for row in logger.history)


def test_gates_command_errors_name_the_problem(healthy, data_file, tmp_path, capsys):
    assert main(["gates", str(healthy.run_dir), str(data_file), "--by", "regoin", "--out", str(tmp_path)]) == 2
    assert "Segment column 'regoin'" in capsys.readouterr().err
    assert main(["gates", str(tmp_path / "none"), str(data_file)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    assert main(["gates", str(healthy.run_dir), str(data_file), "--dominant-share", "2"]) == 2
    assert "dominant_share" in capsys.readouterr().err

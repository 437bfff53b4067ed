"""The training run and scoring end to end, on small synthetic data."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from mtrec.config import apply_overrides, parse_config
from mtrec.data.io import read_table, write_parquet
from mtrec.data.synthetic import make_synthetic
from mtrec.errors import ConfigError, DataError, SchemaError
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.scoring import score_file
from mtrec.training.run import train
from mtrec.training.trained_run import load_run

FAST = ["training.epochs=3", "data.synthetic.n_rows=1500", "training.verbose=0"]


def _config(*overrides):
    return parse_config(apply_overrides(QUICKSTART_CONFIG, [*FAST, *overrides]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    config = _config("data.id_columns=[row_id]", "features=[{name: 'x*', kind: numeric}, {name: shop, kind: categorical}]")
    frame = make_synthetic(1500, correlation=0.9, seed=7)
    frame["row_id"] = np.arange(len(frame))
    frame["shop"] = np.where(frame["x0"] > 0, "north", "south")
    result = train(config, run_dir, frame=frame)
    return result, frame


def test_run_directory_contents(trained):
    result, _ = trained
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "features.json", "model.keras", "metrics.json", "metrics.csv",
            "report.json", "report.md", "run.json", "tensorboard"} <= names
    assert json.loads((result.run_dir / "run.json").read_text())["status"] == "completed"
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert len(metrics) == len(result.history["loss"])
    assert set(metrics[0]["valid"]) == {"total", "y0", "y1"} and "rmse" in metrics[0]["valid"]["y0"]
    assert len(pd.read_csv(result.run_dir / "metrics.csv")) == len(metrics)
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["rows"] == {"train": 1200, "valid": 150, "test": 150}
    assert set(report["test"]) == {"y0", "y1"}


def test_reloaded_run_predicts_identically(trained):
    result, _ = trained
    run = load_run(result.run_dir)
    x = result.prepared.splits["test"].features
    before, after = result.model.predict(x, verbose=0), run.model.predict(x, verbose=0)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    assert run.encoder.transform(pd.DataFrame({"shop": ["north"], **{f"x{i}": [0.0] for i in range(100)}}))["shop"][0] >= 2


def test_scoring_rows_columns_and_order(trained, tmp_path):
    result, frame = trained
    data = frame.drop(columns=["y0", "y1"]).sample(frac=1.0, random_state=0).iloc[:700]
    data.loc[data.index[:5], "shop"] = "west"  # unseen at training time
    source = tmp_path / "in.parquet"
    write_parquet(data, source)
    with pytest.warns(UserWarning, match="out-of-vocabulary.*'shop': 5"):
        summary = score_file(result.run_dir, source, tmp_path / "out.parquet", batch_size=256, progress=False)
    out = read_table(tmp_path / "out.parquet")
    assert summary.rows == 700 and list(out.columns) == ["row_id", "y0", "y1"]
    np.testing.assert_array_equal(out["row_id"].to_numpy(), data["row_id"].to_numpy())
    # Matches the model's own predictions, row for row.
    expected = result.model.predict(load_run(result.run_dir).encoder.transform(data), verbose=0)
    np.testing.assert_allclose(out["y0"].to_numpy(), expected["y0"].ravel(), rtol=1e-5, atol=1e-6)


def test_report_and_scoring_share_one_prediction_path(trained):
    # Scoring the test rows with the saved run gives the report's test metrics to the last digit.
    from mtrec.scoring import score_frame
    from mtrec.training.evaluation import evaluate_predictions

    result, frame = trained
    run = load_run(result.run_dir)
    test = result.prepared.splits["test"]
    scores = score_frame(run, frame.iloc[test.index])
    predictions = {t.name: scores[t.name].to_numpy()[:, None] for t in run.config.tasks}
    recomputed = evaluate_predictions(run.config.tasks, test.labels, predictions,
                                      result.prepared.splits["train"].labels)
    assert recomputed == result.report["test"]


def test_scoring_checks_schema_first(trained, tmp_path):
    result, frame = trained
    source = tmp_path / "in.parquet"
    write_parquet(frame.drop(columns=["x7"]), source)
    with pytest.raises(SchemaError, match="x7"):
        score_file(result.run_dir, source, tmp_path / "out.parquet", progress=False)
    assert not (tmp_path / "out.parquet").exists()
    write_parquet(frame.drop(columns=["row_id"]), source)
    with pytest.raises(SchemaError, match="row_id"):
        score_file(result.run_dir, source, tmp_path / "out.parquet", progress=False)


def test_scoring_empty_or_corrupt_input(trained, tmp_path):
    result, _ = trained
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="corrupt.parquet"):
        score_file(result.run_dir, corrupt, tmp_path / "out.parquet", progress=False)
    with pytest.raises(DataError, match="not a finished run"):
        score_file(tmp_path, corrupt, tmp_path / "out.parquet", progress=False)


def test_learning_beats_a_constant_at_correlation_09(tmp_path):
    """MMoE and SharedBottom explain most of the variance of both synthetic tasks."""
    for model in ("mmoe", "shared_bottom"):
        overrides = ["data.synthetic.n_rows=10000", "training.epochs=30", "training.verbose=0"]
        if model == "shared_bottom":
            overrides.append("model={kind: shared_bottom, bottom_units: [128], tower_units: [8]}")
        config = parse_config(apply_overrides(QUICKSTART_CONFIG, overrides))
        report = train(config, tmp_path / model).report["test"]
        for task in ("y0", "y1"):
            assert report[task]["r2"] > 0.4, (model, task, report[task])
            assert report[task]["constant_baseline"]["r2"] < 0.01
            assert report[task]["rmse"] < 0.8 * report[task]["constant_baseline"]["rmse"]


def test_binary_tasks_reach_auc_well_above_chance(tmp_path):
    config = parse_config(apply_overrides(QUICKSTART_CONFIG, [
        "data.synthetic.n_rows=4000", "data.synthetic.binarize=true", "training.epochs=10",
        "training.verbose=0", "tasks=[{name: y0, kind: binary}, {name: y1, kind: binary}]",
        "training.early_stopping.monitor=val_y0_auc"]))
    report = train(config, tmp_path / "bin").report["test"]
    for task in ("y0", "y1"):
        assert report[task]["auc"] > 0.75 and report[task]["constant_baseline"]["auc"] != report[task]["auc"]


def test_missing_labels_are_masked_in_training(tmp_path):
    frame = make_synthetic(1500, correlation=0.9, seed=7)
    frame.loc[frame.index[::3], "y1"] = np.nan
    result = train(_config(), tmp_path / "masked", frame=frame)
    assert np.isfinite(result.history["loss"]).all()
    test = result.report["test"]
    assert test["y1"]["count"] < test["y0"]["count"] == 150


def test_bad_label_column_type_fails_and_says_so(tmp_path):
    frame = make_synthetic(300, seed=1)
    frame["y0"] = frame["y0"].astype(str)
    with pytest.raises(SchemaError, match="'y0'.*numeric"):
        train(_config(), tmp_path / "bad", frame=frame)
    status = json.loads((tmp_path / "bad" / "run.json").read_text())
    assert status["status"] == "failed" and "y0" in status["error"]
    assert not (tmp_path / "bad" / "model.keras").exists()


def test_misspelled_monitor_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="val_y0_rmse"):
        train(_config("training.early_stopping.monitor=val_y0_rmsee"), tmp_path / "r")


def test_completed_run_is_not_overwritten(trained, tmp_path):
    result, frame = trained
    from mtrec.errors import MtrecError
    with pytest.raises(MtrecError, match="--overwrite"):
        train(_config(), result.run_dir, frame=frame)


def test_seed_makes_runs_repeatable(tmp_path):
    a = train(_config(), tmp_path / "a").history
    b = train(_config(), tmp_path / "b").history
    assert a["loss"] == b["loss"]


def test_resume_from_checkpoint(tmp_path):
    """An interrupted run resumes at the next epoch instead of starting over."""
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    import mtrec.training.run as run_module
    original = run_module.TaskMetricsLogger
    class InterruptingLogger(original):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            Interrupt().on_epoch_end(epoch, logs)
    run_module.TaskMetricsLogger = InterruptingLogger
    try:
        with pytest.raises(KeyboardInterrupt):
            train(_config("training.epochs=4", "training.early_stopping=null"), tmp_path / "r")
    finally:
        run_module.TaskMetricsLogger = original
    assert (tmp_path / "r" / "checkpoints").exists()
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "failed"
    result = train(_config("training.epochs=4", "training.early_stopping=null"), tmp_path / "r")
    # The interruption came after epoch 1 was logged but before its backup was
    # written (the logger runs first), so the run resumes at epoch 1, not 0.
    assert len(result.history["loss"]) == 3
    assert [row["epoch"] for row in json.loads((tmp_path / "r" / "metrics.json").read_text())] == [0, 1, 2, 3]


def test_auxiliary_task_trains_but_is_not_scored_or_selected_on(tmp_path):
    frame = make_synthetic(1500, correlation=0.9, seed=7)
    config = _config("tasks.1.auxiliary=true", "data.id_columns=[]")
    with pytest.raises(ConfigError, match="val_y1_rmse"):
        train(parse_config(apply_overrides(config.get_config(), ["training.early_stopping.monitor=val_y1_rmse"])),
              tmp_path / "x", frame=frame)
    result = train(config, tmp_path / "aux", frame=frame)
    assert "val_main_loss" in pd.read_csv(result.run_dir / "metrics.csv").columns
    assert "y1" in result.report["test"]  # still evaluated, for the record
    source = tmp_path / "in.parquet"
    write_parquet(frame.drop(columns=["y0", "y1"]).head(50), source)
    score_file(result.run_dir, source, tmp_path / "out.parquet", progress=False)
    assert list(read_table(tmp_path / "out.parquet").columns) == ["y0"]


def test_one_task_model_logs_and_stops_on_prefixed_names(tmp_path):
    # Keras logs "val_rmse" for a one-output model; the run must still expose "val_y0_rmse".
    frame = make_synthetic(1500, correlation=0.9, seed=7).drop(columns=["y1"])
    config = _config("tasks=[{name: y0, kind: regression}]", "model={kind: single_task}",
                     "data.id_columns=[]", "training.epochs=3",
                     "training.early_stopping={monitor: val_y0_rmse, patience: 1}")
    result = train(config, tmp_path / "one", frame=frame)
    logged = pd.read_csv(result.run_dir / "metrics.csv")
    assert {"val_y0_rmse", "val_y0_loss", "y0_loss"} <= set(logged.columns)
    np.testing.assert_allclose(logged["val_y0_rmse"], logged["val_rmse"])


def test_default_run_dir_names_experiment_and_recommend_runs():
    from pathlib import Path
    from types import SimpleNamespace

    from mtrec.training.run import default_run_dir

    config = _config()
    experiment = default_run_dir(config, root="out")
    assert experiment.parent == Path("out") / config.name
    assert experiment.name.startswith(f"{config.model.kind}-")
    # Any other config with a name (the recommend job's) gets the timestamp alone.
    other = default_run_dir(SimpleNamespace(name="rec"), root="out")
    assert other.parent == Path("out") / "rec" and other.name[:8].isdigit()


def test_training_does_not_import_analysis():
    # analysis builds on training (its loggers live in mtrec.training); the reverse would be a cycle.
    import ast
    from pathlib import Path

    import mtrec.training

    for path in Path(mtrec.training.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("mtrec.analysis") for n in names), path.name

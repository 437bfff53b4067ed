"""Reliability: kills during training, damaged checkpoints, one writer per run directory, file modes.

The kill tests run `train` in a subprocess that SIGKILLs itself at a chosen
moment, then rerun it plainly in this process: the rerun must complete, lose
at most one finished epoch and leave nothing half-written under a final name.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtrec.config import apply_overrides, parse_config
from mtrec.errors import CheckpointError, RunDirectoryError
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.training.checkpoints import list_checkpoints
from mtrec.training.prepare import prepare
from mtrec.training.run import train
from mtrec.training.run_lock import RunLock, run_status
from mtrec.utils.atomic import remove_stale_temporaries, write_text

ROOT = Path(__file__).resolve().parents[1]
FAST = ["data.synthetic.n_rows=600", "training.verbose=0", "training.early_stopping=null",
        "training.batch_size=64", "model.num_experts=2"]
EPOCHS = 4


def _config(*overrides):
    return parse_config(apply_overrides(QUICKSTART_CONFIG, [*FAST, f"training.epochs={EPOCHS}", *overrides]))


def _train_and_kill(run_dir: Path, kill_code: str) -> None:
    """Runs `train` in a subprocess with `kill_code` patched in; it must die by SIGKILL."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        import keras
        from mtrec.config import apply_overrides, parse_config
        from mtrec.quickstart import QUICKSTART_CONFIG
        from mtrec.training.run import train
        config = parse_config(apply_overrides(QUICKSTART_CONFIG, {FAST + [f"training.epochs={EPOCHS}"]!r}))
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
    """) + textwrap.dedent(kill_code) + f"\ntrain(config, {str(run_dir)!r})\n"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=120,
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _no_temporaries(folder: Path) -> None:
    leftovers = [p for p in folder.rglob(".*") if p.is_file() and p.name != ".gitignore"]
    assert leftovers == [], leftovers


def _metrics_epochs(run_dir: Path) -> list[int]:
    return [row["epoch"] for row in json.loads((run_dir / "metrics.json").read_text())]


def test_kill_during_the_checkpoint_write_resumes_from_the_last_good_one(tmp_path):
    run_dir = tmp_path / "r"
    # The third end-of-epoch checkpoint is cut off halfway through its weights file.
    _train_and_kill(run_dir, """
        original = keras.Model.save_weights
        calls = []
        def save_weights(self, filepath, *args, **kwargs):
            calls.append(filepath)
            original(self, filepath, *args, **kwargs)
            if len(calls) == 3:
                size = os.path.getsize(filepath)
                with open(filepath, "r+b") as f:
                    f.truncate(size // 2)
                die()
        keras.Model.save_weights = save_weights
    """)
    assert run_status(run_dir)["status"] == "interrupted"
    assert [epoch for epoch, _, _ in list_checkpoints(run_dir / "checkpoints")] == [2, 1]
    assert not (run_dir / "model.keras").exists() and not (run_dir / "report.json").exists()
    result = train(_config(), run_dir)  # a plain rerun
    assert len(result.history["loss"]) == EPOCHS - 2  # epochs 3 and 4: only the epoch being saved was lost
    assert _metrics_epochs(run_dir) == list(range(EPOCHS))
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs"] == EPOCHS and record["attempts"] == 2
    assert record["epochs_this_attempt"] == EPOCHS - 2 and record["pid"] == os.getpid()
    assert not (run_dir / "checkpoints").exists()
    _no_temporaries(run_dir)


def test_kill_mid_epoch_loses_at_most_the_epoch_in_progress(tmp_path):
    run_dir = tmp_path / "r"
    _train_and_kill(run_dir, """
        class Kill(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch
            def on_train_batch_end(self, batch, logs=None):
                if self.epoch == 2 and batch >= 1:
                    die()
        import mtrec.training.run as run_module
        fit = run_module.fit_model
        run_module.fit_model = lambda config, prepared, callbacks=None: fit(config, prepared, [*callbacks, Kill()])
    """)
    record = run_status(run_dir)
    assert record["status"] == "interrupted" and record["epochs"] == 2 and record["host"]
    result = train(_config(), run_dir)
    assert len(result.history["loss"]) == EPOCHS - 2
    assert json.loads((run_dir / "run.json").read_text())["epochs"] == EPOCHS
    _no_temporaries(run_dir)


def test_a_damaged_checkpoint_is_named_and_the_one_before_it_used(tmp_path, caplog):
    run_dir = tmp_path / "r"
    import mtrec.training.run as run_module
    original = run_module.TaskMetricsLogger

    class Stop(original):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if epoch == 2:
                raise KeyboardInterrupt

    run_module.TaskMetricsLogger = Stop
    try:
        with pytest.raises(KeyboardInterrupt):
            train(_config(), run_dir)
    finally:
        run_module.TaskMetricsLogger = original
    (epoch, newest, _), (older, _, _) = list_checkpoints(run_dir / "checkpoints")
    assert (epoch, older) == (2, 1)
    newest.write_bytes(newest.read_bytes()[:1000])  # damaged on disk
    with caplog.at_level("WARNING"):
        result = train(_config(), run_dir)
    assert newest.name in caplog.text and "damaged" in caplog.text
    assert len(result.history["loss"]) == EPOCHS - 1


def test_no_usable_checkpoint_is_a_named_error_with_the_way_out(tmp_path):
    run_dir = tmp_path / "r"
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "epoch-0001.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n broken")
    write_text(folder / "epoch-0001.json", json.dumps({"epoch": 1, "bytes": 17}))
    with pytest.raises(CheckpointError, match=r"epoch-0001.weights.h5.*--overwrite"):
        train(_config(), run_dir)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


def test_a_second_writer_is_refused_with_the_holders_pid_and_host(tmp_path):
    run_dir = tmp_path / "r"
    with RunLock(run_dir):
        with pytest.raises(RunDirectoryError, match=rf"in use by another mtrec process \(pid {os.getpid()} on "):
            train(_config(), run_dir)
        assert not (run_dir / "config.yaml").exists()
    write_text(run_dir / "run.json", json.dumps({"status": "running", "pid": 1, "host": "x"}))
    assert run_status(run_dir)["status"] == "interrupted"  # nobody holds the lock


def test_files_are_written_with_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        os.umask(0o077)
        write_text(tmp_path / "b.txt", "x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".out.parquet.{dead}-abcd1234.parquet"
    live = tmp_path / f".out.parquet.{os.getpid()}-abcd1234.parquet"
    other = tmp_path / f".other.parquet.{dead}-abcd1234.parquet"
    for path in (stale, live, other):
        path.write_bytes(b"x")
    write_text(tmp_path / "out.parquet", "done")
    assert not stale.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path) == [other]


# -- scoring ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("scored") / "run"
    config = _config("training.epochs=1", "data.id_columns=[row_id]")
    from mtrec.data.synthetic import make_synthetic
    frame = make_synthetic(600, correlation=0.5, seed=3)
    frame["row_id"] = np.arange(len(frame))
    train(config, run_dir, frame=frame)
    return run_dir, frame.drop(columns=["y0", "y1"])


def test_scoring_refuses_to_replace_its_input(scored_run, tmp_path):
    from mtrec.data.io import write_parquet
    from mtrec.errors import DataError
    from mtrec.scoring import score_file
    run_dir, rows = scored_run
    source = tmp_path / "in.parquet"
    write_parquet(rows, source)
    before = source.read_bytes()
    os.link(source, tmp_path / "alias.parquet")
    for output in (source, tmp_path / "." / "in.parquet", tmp_path / "alias.parquet"):
        with pytest.raises(DataError, match="is the input file"):
            score_file(run_dir, source, output, progress=False)
    assert source.read_bytes() == before
    with pytest.raises(DataError, match="is a directory"):
        score_file(run_dir, source, tmp_path, progress=False)
    folder = tmp_path / "shards"
    folder.mkdir()
    write_parquet(rows, folder / "part-0.parquet")
    with pytest.raises(DataError, match="inside the input folder"):
        score_file(run_dir, folder, folder / "scores.parquet", progress=False)
    with pytest.raises(DataError, match="batch_size=0"):
        score_file(run_dir, source, tmp_path / "out.parquet", batch_size=0, progress=False)
    _no_temporaries(tmp_path)


def test_scoring_zero_rows_writes_the_task_columns(scored_run, tmp_path):
    import pyarrow.parquet as pq
    from mtrec.data.io import write_parquet
    from mtrec.scoring import score_file
    run_dir, rows = scored_run
    write_parquet(rows.iloc[:0], tmp_path / "empty.parquet")
    summary = score_file(run_dir, tmp_path / "empty.parquet", tmp_path / "out.parquet", progress=False)
    table = pq.read_table(tmp_path / "out.parquet")
    assert summary.rows == 0 and table.num_rows == 0
    assert table.column_names == ["row_id", "y0", "y1"] and str(table.schema.field("y0").type) == "float"
    score_file(run_dir, tmp_path / "empty.parquet", tmp_path / "full.parquet", progress=False)
    write_parquet(rows.iloc[:10], tmp_path / "ten.parquet")
    score_file(run_dir, tmp_path / "ten.parquet", tmp_path / "full.parquet", progress=False)
    assert pq.read_table(tmp_path / "full.parquet").schema.equals(table.schema)


def test_kill_during_scoring_leaves_no_output_and_the_rerun_cleans_up(scored_run, tmp_path):
    from mtrec.data.io import read_table, write_parquet
    from mtrec.scoring import score_file
    run_dir, rows = scored_run
    write_parquet(rows, tmp_path / "in.parquet")
    script = textwrap.dedent(f"""
        import os, signal
        import mtrec.data.io as io
        write = io.ParquetBatchWriter.write
        def dying_write(self, batch):
            write(self, batch)
            os.kill(os.getpid(), signal.SIGKILL)
        io.ParquetBatchWriter.write = dying_write
        from mtrec.scoring import score_file
        score_file({str(run_dir)!r}, {str(tmp_path / "in.parquet")!r}, {str(tmp_path / "out.parquet")!r},
                   batch_size=100, progress=False)
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=120, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not (tmp_path / "out.parquet").exists()
    assert [p.name for p in tmp_path.glob(".out.parquet.*")]  # the killed writer's temporary file
    score_file(run_dir, tmp_path / "in.parquet", tmp_path / "out.parquet", progress=False)
    assert len(read_table(tmp_path / "out.parquet")) == len(rows)
    _no_temporaries(tmp_path)


# -- the command line ---------------------------------------------------------------------------

def test_every_cli_error_is_one_line_with_exit_2_and_debug_shows_the_traceback(monkeypatch, capsys):
    import mtrec.cli as cli

    def boom(args):
        raise RuntimeError("deep inside\n  a second line")

    real = cli.build_parser

    def parser_with_boom():
        parser = real()
        parser._subparsers._group_actions[0].choices["synthetic"].set_defaults(func=boom)
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_with_boom)
    assert cli.main(["synthetic", "x.parquet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("mtrec synthetic: error: RuntimeError: deep inside a second line "
                   "(unexpected; rerun with --debug for the traceback)")
    with pytest.raises(RuntimeError, match="deep inside"):
        cli.main(["synthetic", "x.parquet", "--debug"])
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "synthetic", "x.parquet"])


@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_cli_refuses_a_batch_size_below_one(value, capsys, tmp_path):
    from mtrec.cli import main
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(tmp_path), "in.parquet", "out.parquet", "--batch-size", value])
    assert exit_info.value.code == 2
    assert "argument --batch-size: must be a positive integer" in capsys.readouterr().err


def test_cli_output_directory_and_truncated_gzip_are_one_line(scored_run, tmp_path, capsys):
    import gzip
    from mtrec.cli import main
    from mtrec.data.io import write_parquet
    run_dir, rows = scored_run
    write_parquet(rows, tmp_path / "in.parquet")
    assert main(["score", str(run_dir), str(tmp_path / "in.parquet"), str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mtrec score: error: Output path") and "is a directory" in err
    data = gzip.compress(rows.to_csv(index=False).encode())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    code = main(["score", str(run_dir), str(tmp_path / "cut.csv.gz"), str(tmp_path / "o.parquet"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("mtrec score: error: Cannot read"), err
    assert "cut.csv.gz as CSV: the compressed file is truncated" in err
    assert not (tmp_path / "o.parquet").exists()


# -- run files ----------------------------------------------------------------------------------

def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    return copy


def test_truncated_model_file_is_a_named_error(scored_run, tmp_path):
    from mtrec.errors import ModelFileError
    from mtrec.training.trained_run import load_run
    run = _copy_run(scored_run[0], tmp_path)
    data = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"model.keras is truncated: [\d,]+ bytes where the run wrote"):
        load_run(run)
    record = json.loads((run / "run.json").read_text())
    del record["fingerprint"]  # an older run: no record of the size
    write_text(run / "run.json", json.dumps(record))
    with pytest.raises(ModelFileError, match="model.keras is not a Keras model archive"):
        load_run(run)


def test_features_of_another_run_are_refused(scored_run, tmp_path):
    from mtrec.errors import ModelFileError
    from mtrec.training.trained_run import load_run
    run = _copy_run(scored_run[0], tmp_path)
    features = json.loads((run / "features.json").read_text())
    features["numeric_columns"] = features["numeric_columns"][:-1]
    features["numeric"] = features["numeric"][:-1]
    write_text(run / "features.json", json.dumps(features))
    with pytest.raises(ModelFileError, match="features.json is not the one .*model.keras was trained with"):
        load_run(run)
    record = json.loads((run / "run.json").read_text())
    del record["fingerprint"]
    write_text(run / "run.json", json.dumps(record))
    with pytest.raises(ModelFileError, match="features.json does not match .*model.keras: .*numeric_dim"):
        load_run(run)


def test_safe_mode_refusal_is_one_named_error(scored_run, tmp_path):
    import keras
    from mtrec.errors import ModelFileError
    from mtrec.training.trained_run import load_run
    run = _copy_run(scored_run[0], tmp_path)
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(run / "model.keras")
    record = json.loads((run / "run.json").read_text())
    del record["fingerprint"]
    write_text(run / "run.json", json.dumps(record))
    with pytest.raises(ModelFileError, match="refused by Keras' safe mode"):
        load_run(run)


# -- what is read -------------------------------------------------------------------------------

def _frame(n=600, seed=3):
    from mtrec.data.synthetic import make_synthetic
    return make_synthetic(n, correlation=0.5, seed=seed)


def test_inf_labels_are_counted_warned_about_and_refused_above_the_fraction(tmp_path):
    from mtrec.errors import DataError
    frame = _frame()
    frame.loc[:59, "y0"] = np.inf  # 10% of the rows
    with pytest.raises(DataError, match=r"Label column 'y0' of the input table holds 60 \+/-inf values in 600 rows"):
        train(_config("training.epochs=1"), tmp_path / "a", frame=frame)
    frame.loc[3:59, "y0"] = 0.5  # 3 rows: 0.5%, under the default 1%
    with pytest.warns(UserWarning, match=r"Label column\(s\) of the input table hold \+/-inf .*'y0': 3"):
        prepare(_config(), frame)


def test_inf_features_fail_above_the_configured_fraction(tmp_path):
    from mtrec.errors import DataError
    frame = _frame()
    frame.loc[:11, "x4"] = -np.inf  # 2%
    with pytest.raises(DataError, match=r"Feature column 'x4' .* 12 \+/-inf .*max_nonfinite_fraction=0.01"):
        train(_config("training.epochs=1"), tmp_path / "a", frame=frame)
    with pytest.warns(UserWarning, match="'x4': 12"):
        prepare(_config("data.max_nonfinite_fraction=0.05"), frame)


def test_an_all_missing_feature_is_refused_at_fit_and_warned_about_at_scoring(scored_run, tmp_path):
    from mtrec.data.io import write_parquet
    from mtrec.errors import DataError
    from mtrec.scoring import score_file
    frame = _frame()
    frame["x7"] = np.nan
    with pytest.raises(DataError, match=r"Feature column\(s\) \['x7'\] .* entirely missing in the training split"):
        train(_config("training.epochs=1"), tmp_path / "a", frame=frame)
    assert not (tmp_path / "a" / "model.keras").exists()
    run_dir, rows = scored_run
    rows = rows.copy()
    rows["x7"] = np.nan
    write_parquet(rows, tmp_path / "in.parquet")
    with pytest.warns(UserWarning, match=r"Feature column\(s\) \['x7'\] of .*in.parquet are entirely missing"):
        score_file(run_dir, tmp_path / "in.parquet", tmp_path / "out.parquet", progress=False)


def test_magnitudes_beyond_float32_are_refused_naming_column_and_file(scored_run, tmp_path):
    from mtrec.data.io import write_parquet
    from mtrec.errors import DataError
    from mtrec.scoring import score_file
    frame = _frame()
    frame["x2"] = frame["x2"].astype("float64")  # float32 cannot hold it at all
    frame.loc[5, "x2"] = 3e301
    path = tmp_path / "bad.parquet"
    write_parquet(frame, path)
    with pytest.raises(DataError, match=r"Column 'x2' of .*bad.parquet holds 1 values beyond float32's range"):
        train(_config("training.epochs=1", f"data.path={path}"), tmp_path / "a")
    run_dir, rows = scored_run
    rows = rows.copy()
    rows["x2"] = rows["x2"].astype("float64")
    rows.loc[rows.index[7], "x2"] = -1e39
    write_parquet(rows, tmp_path / "in.parquet")
    with pytest.raises(DataError, match="Column 'x2' .*in.parquet .*largest 1e\\+39"):
        score_file(run_dir, tmp_path / "in.parquet", tmp_path / "out.parquet", progress=False)
    assert not (tmp_path / "out.parquet").exists()


def test_a_duplicated_column_name_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mtrec.data.io import read_schema, read_table
    from mtrec.errors import SchemaError
    (tmp_path / "d.csv").write_text("num1,num2,num1\n1,2,3\n4,5,6\n")
    for call in (read_table, read_schema):
        with pytest.raises(SchemaError, match=r"\['num1'\] appear more than once in .*d.csv"):
            call(tmp_path / "d.csv")
    pq.write_table(pa.table([pa.array([1]), pa.array([2])], names=["a", "a"]), tmp_path / "d.parquet")
    with pytest.raises(SchemaError, match=r"\['a'\] appear more than once in .*d.parquet"):
        read_table(tmp_path / "d.parquet")
    frame = _frame()
    frame.columns = [*frame.columns[:-1], "x0"]
    with pytest.raises(SchemaError, match=r"\['x0'\] appear more than once in the input table"):
        train(_config("training.epochs=1"), tmp_path / "r", frame=frame)


def test_na_values_are_the_same_for_csv_and_parquet(tmp_path):
    from mtrec.data.io import DEFAULT_NA_VALUES, read_table, write_parquet
    frame = pd.DataFrame({"shop": ["a", "", "NULL", "b", "NA", "-"], "x": [1.0, 2, 3, 4, 5, 6]})
    write_parquet(frame, tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    for na_values, missing in ((DEFAULT_NA_VALUES, [1, 2, 4]), (["-"], [5]), ([], [])):
        parquet = read_table(tmp_path / "t.parquet", na_values=na_values)
        csv = read_table(tmp_path / "t.csv", na_values=na_values)
        assert parquet["shop"].isna().to_numpy().nonzero()[0].tolist() == missing
        assert csv["shop"].isna().to_numpy().nonzero()[0].tolist() == missing, na_values
    # Without na_values read_table reads as before: pandas' list in CSV, nothing in Parquet.
    assert read_table(tmp_path / "t.parquet")["shop"].isna().sum() == 0
    assert read_table(tmp_path / "t.csv")["shop"].isna().sum() == 3


def test_training_on_csv_or_parquet_gives_the_same_vocabulary(tmp_path):
    from mtrec.data.io import write_parquet
    frame = _frame()
    frame["shop"] = np.where(frame["x0"] > 0, "north", np.where(frame["x1"] > 0, "", "NULL"))
    write_parquet(frame, tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    features = "features=[{name: 'x*', kind: numeric}, {name: shop, kind: categorical}]"
    vocabularies = []
    for name in ("t.parquet", "t.csv"):
        prepared = prepare(_config(features, f"data.path={tmp_path / name}"))
        vocabularies.append(prepared.encoder.get_config()["tables"])
    assert vocabularies[0] == vocabularies[1]
    assert "" not in vocabularies[0]["shop"]["vocabulary"] and "NULL" not in vocabularies[0]["shop"]["vocabulary"]


def test_a_run_directory_held_by_another_process_is_refused_and_freed_when_it_dies(tmp_path):
    run_dir = tmp_path / "r"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from mtrec.training.run_lock import RunLock
            with RunLock({str(run_dir)!r}):
                print("locked", flush=True)
                time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryError, match=rf"pid {holder.pid} on "):
            train(_config(), run_dir)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with RunLock(run_dir):  # the dead holder's lock is gone
        pass


def test_scoring_an_unfinished_run_says_what_happened_to_it(tmp_path):
    from mtrec.errors import ConfigError, DataError
    from mtrec.training.trained_run import load_run
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    write_text(run_dir / "run.json", json.dumps({"status": "running", "pid": 99, "host": "h1",
                                                   "heartbeat": "2026-01-01T00:00:00", "epochs": 3}))
    with pytest.raises(DataError, match=r"interrupted \(pid 99 on h1, .*3 epochs done\): rerun `mtrec train`"):
        load_run(run_dir)
    with RunLock(run_dir):
        write_text(run_dir / "run.json", json.dumps({"status": "running", "pid": 99, "host": "h1"}))
        with pytest.raises(DataError, match=r"still training \(pid 99 on h1"):
            load_run(run_dir)
    with pytest.raises(ConfigError, match=r"scoring.batch_size must be >= 1. Received: 0"):
        _config("scoring.batch_size=0")


def test_bytes_damaged_inside_a_parquet_file_are_a_named_error(tmp_path):
    from mtrec.data.io import iter_parquet_batches, read_table, write_parquet
    from mtrec.errors import DataError
    write_parquet(_frame(2000, seed=1), tmp_path / "t.parquet")  # pages carry a CRC32
    data = bytearray((tmp_path / "t.parquet").read_bytes())
    rng = np.random.default_rng(2)  # without the checksum, such damage can decode to wrong numbers
    middle = len(data) // 2
    data[middle:middle + 256] = rng.bytes(256)
    (tmp_path / "t.parquet").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"t.parquet as Parquet: .*CRC checksum"):
        read_table(tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t.parquet as Parquet: .*CRC checksum"):
        list(iter_parquet_batches(tmp_path / "t.parquet", 500))
    folder = tmp_path / "shards"
    folder.mkdir()
    (tmp_path / "t.parquet").rename(folder / "part-0.parquet")
    with pytest.raises(DataError, match="CRC checksum"):
        read_table(folder)


@pytest.fixture
def interrupt_model_save(monkeypatch):
    """A context in which `keras.Model.save` is interrupted (Ctrl-C while the model is written)."""
    import contextlib
    import keras

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def interrupting():
        with monkeypatch.context() as patch:
            patch.setattr(keras.Model, "save", interrupted)
            with pytest.raises(KeyboardInterrupt):
                yield

    return interrupting


def test_a_run_killed_while_saving_the_model_finishes_on_rerun(tmp_path, interrupt_model_save):
    run_dir = tmp_path / "r"
    with interrupt_model_save():
        train(_config("training.epochs=2"), run_dir)
    assert not (run_dir / "model.keras").exists()
    result = train(_config("training.epochs=2"), run_dir)  # every epoch was checkpointed: none to run
    assert result.history.get("loss", []) == [] and result.report["test"]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs"] == 2
    _no_temporaries(run_dir)


# -- state beyond the weights: early stopping and task weighting ---------------------------------

EARLY = ["training.epochs=6", "training.learning_rate=0.01",
         "training.early_stopping={monitor: val_loss, patience: 1}"]


def test_a_run_killed_before_its_model_is_saved_ends_on_the_best_weights_after_rerun(tmp_path):
    """Early stopping stopped the run and restored its best epoch; the kill came before model.keras."""
    import keras
    run_dir = tmp_path / "r"
    expected = tmp_path / "expected.npz"
    overrides = [o for o in FAST if o != "training.early_stopping=null"] + EARLY
    script = textwrap.dedent(f"""
        import os, signal
        import keras, numpy as np
        from mtrec.config import apply_overrides, parse_config
        from mtrec.quickstart import QUICKSTART_CONFIG
        from mtrec.training.run import train
        def save(self, *args, **kwargs):  # what an uninterrupted run would write, then die
            np.savez({str(expected)!r}, *self.get_weights())
            os.kill(os.getpid(), signal.SIGKILL)
        keras.Model.save = save
        train(parse_config(apply_overrides(QUICKSTART_CONFIG, {overrides!r})), {str(run_dir)!r})
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=180, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    val_loss = [row["valid"]["total"]["loss"] for row in json.loads((run_dir / "metrics.json").read_text())]
    best = int(np.argmin(val_loss))
    # The case that matters: stopped before training.epochs, on an epoch that is not the best.
    assert len(val_loss) < 6 and best < len(val_loss) - 1, val_loss
    (stopped, _, meta), _ = list_checkpoints(run_dir / "checkpoints")
    assert stopped == len(val_loss) and meta["stopped"] and meta["state"].endswith(".state.npz")

    result = train(parse_config(apply_overrides(QUICKSTART_CONFIG, overrides)), run_dir)  # a plain rerun
    assert result.history.get("loss", []) == []  # early stopping had ended it: no epoch trained again
    with np.load(expected) as saved:
        want = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    got = keras.saving.load_model(run_dir / "model.keras", compile=False).get_weights()
    assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs"] == len(val_loss)


def test_dwa_keeps_its_loss_history_across_a_resume(tmp_path, interrupt_model_save):
    from mtrec.weighting.dwa import DynamicWeightAverage
    run_dir = tmp_path / "r"
    with interrupt_model_save():
        train(_config("training.epochs=2", "weighting={kind: dwa}"), run_dir)
    result = train(_config("training.epochs=3", "weighting={kind: dwa}"), run_dir)
    assert len(result.history["loss"]) == 1  # epoch 3 only
    rows = json.loads((run_dir / "metrics.json").read_text())
    losses = [np.array([row["train"][t]["loss"] for t in ("y0", "y1")]) for row in rows[:2]]
    # Epoch 3's weights come from the losses of epochs 1 and 2, which only the first process saw.
    want = DynamicWeightAverage.dwa_weights(losses[1], losses[0], 2.0)
    got = np.array([rows[2]["train"][t]["weight"] for t in ("y0", "y1")])
    assert not np.allclose(want, 1.0, atol=1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_uncertainty_weighting_state_is_saved_and_restored():
    import keras
    from mtrec.training.callbacks import WeightingState
    from mtrec.training.run import fit_model
    config = _config("training.epochs=1", "weighting={kind: uncertainty, learning_rate: 0.05}")
    prepared = prepare(config)
    keras.utils.set_random_seed(0)
    fitted = fit_model(config, prepared)
    state = WeightingState(fitted.weighting).checkpoint_state()
    assert not np.allclose(state["values"], 0.0)  # the log-variances, learned during the epoch
    # They are trained by the model's optimizer, whose slots the checkpoint's weights file holds.
    assert any(v is fitted.weighting.values for v in fitted.model.trainable_variables)
    fresh = config.weighting.build().attach(fitted.model, prepared.splits["train"].features, 0.01, 0)
    WeightingState(fresh).restore_checkpoint_state(state)
    again = WeightingState(fresh).checkpoint_state()
    assert state.keys() == again.keys() and all(np.array_equal(state[k], again[k]) for k in state)


def test_mtrec_status_says_what_became_of_a_run(tmp_path, capsys):
    import datetime as dt
    from mtrec.cli import main
    run_dir = tmp_path / "r"
    (run_dir / "checkpoints").mkdir(parents=True)
    write_text(run_dir / "checkpoints" / "epoch-0003.json", json.dumps({"epoch": 3}))
    beat = (dt.datetime.now() - dt.timedelta(minutes=10)).isoformat(timespec="seconds")
    record = {"status": "running", "pid": 4242, "host": "h1", "heartbeat": beat, "epochs": 3,
              "seconds": 61.5, "attempts": 2}
    write_text(run_dir / "run.json", json.dumps(record))
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{run_dir}: interrupted"  # nobody holds the lock
    assert "epochs 3, 61.5 s over 2 attempts" in out and f"pid 4242 on h1, last heartbeat {beat} (10 min ago)" in out
    assert f"--run-dir {run_dir}` to resume from epoch 3" in out
    with RunLock(run_dir):
        main(["status", str(run_dir)])
        assert capsys.readouterr().out.splitlines()[0] == f"{run_dir}: running"
    write_text(run_dir / "run.json", json.dumps({**record, "status": "failed", "error": "DataError: boom"}))
    main(["status", str(run_dir)])
    assert "error: DataError: boom" in capsys.readouterr().out
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"mtrec status: error: {tmp_path / 'nope'} is not a run directory: it does not exist."

"""The `mtrec` command: train, score, synthetic, quickstart, error exits, and only mtrec's own lines."""

import os
import subprocess
import sys

import pandas as pd

from mtrec.cli import main
from mtrec.utils.framework_logs import is_framework_line
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


#: What TensorFlow prints on a CPU machine, and the retracing warnings of several runs in one process.
FRAMEWORK_NOISE = ("cuInit", "cudart_stub", "absl::InitializeLog", "retracing", "oneDNN")


def _mtrec(*args, cwd):
    """Runs the `mtrec` command in a fresh process, without the test scripts' TF_CPP_MIN_LOG_LEVEL."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", "import sys; from mtrec.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, env=env, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_commands_print_only_mtrec_lines_unless_verbose(tmp_path):
    # The quickstart trains nine models in one process: TensorFlow would warn about retracing.
    out = _mtrec("quickstart", "--out", str(tmp_path / "qs"), "data.synthetic.n_rows=600", "training.epochs=1",
                 cwd=tmp_path)
    assert not [noise for noise in FRAMEWORK_NOISE if noise in out], out
    assert not [line for line in out.splitlines() if is_framework_line(line)], out
    assert "| mmoe" in out and "| single_task" in out and "Run directories" in out
    # --verbose keeps TensorFlow's own lines (on this CPU machine: the CUDA probing, oneDNN).
    out = _mtrec("--verbose", "train", "-c", str(REPO / "configs/quickstart.yaml"), "--run-dir",
                 str(tmp_path / "run"), *SMALL, cwd=tmp_path)
    assert "Run directory:" in out
    assert any(is_framework_line(line) for line in out.splitlines()), out

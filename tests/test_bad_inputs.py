"""A corpus of bad inputs to the `mtrec` command: data files, scoring inputs, configs and run files.

Each case runs the command in this process (`mtrec.cli.main`) and must end
in exit status 2 with one line, `mtrec <command>: error: ...`, that names the
file, column or key at fault (argparse's own errors add its usage line above
it), no traceback, no "unexpected" error, and nothing under a final output
name (scores, `model.keras`, `report.json`) nor a temporary file left behind.
A few cases are documented warnings instead: exit status 0, and a warning
that names the column. One small run is trained once for the scoring and
run-file cases.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mtrec.cli import main
from mtrec.data.io import write_parquet
from mtrec.data.synthetic import make_synthetic

BASE: dict[str, Any] = {
    "name": "bad-inputs",
    "seed": 1,
    "data": {"path": None, "split": {"kind": "random", "fractions": [0.8, 0.1, 0.1], "seed": 1}},
    "features": [{"name": "x*", "kind": "numeric"}],
    "tasks": [{"name": "y0", "kind": "regression"}, {"name": "y1", "kind": "regression"}],
    "model": {"kind": "mmoe", "num_experts": 2, "expert": {"units": [8]}, "tower_units": [4]},
    "training": {"epochs": 1, "batch_size": 64, "learning_rate": 0.01, "verbose": 0},
}


def _merge(base: Any, changes: Any) -> Any:
    """`changes` deep-merged into a copy of `base`; a value `DROP` removes the key."""
    if not isinstance(base, dict) or not isinstance(changes, dict):
        return changes
    out = dict(base)
    for key, value in changes.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = _merge(base.get(key), value)
    return out


DROP = object()


@dataclasses.dataclass
class Env:
    """One case's folder, with the shared data and trained run."""

    tmp: Path
    frame: pd.DataFrame  # 400 rows: x0..x3, y0, y1
    data: Path  # the frame as Parquet
    run: Path  # a finished run trained on it (do not change: copy with run_copy)

    @property
    def rows(self) -> pd.DataFrame:
        return self.frame.drop(columns=["y0", "y1"])

    def path(self, name: str) -> Path:
        return self.tmp / name

    def csv(self, frame: pd.DataFrame, name: str = "t.csv") -> Path:
        frame.to_csv(self.path(name), index=False)
        return self.path(name)

    def parquet(self, frame: pd.DataFrame, name: str = "t.parquet") -> Path:
        write_parquet(frame, self.path(name))
        return self.path(name)

    def raw(self, data: bytes | str, name: str) -> Path:
        path = self.path(name)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def config(self, changes: Any = None, data: Path | None = None, name: str = "c.yaml") -> Path:
        config = _merge(BASE, {"data": {"path": str(data or self.data)}})
        config = _merge(config, changes or {})
        return self.raw(yaml.safe_dump(config, sort_keys=False), name)

    def train(self, config: Path | None = None, *extra: str) -> list[str]:
        return ["train", "-c", str(config or self.config()), "--run-dir", str(self.path("run")), *extra]

    def train_on(self, data: Path, changes: Any = None) -> list[str]:
        return self.train(self.config(changes, data=data))

    def score(self, source: Path, *extra: str, run: Path | None = None, out: Path | None = None) -> list[str]:
        return ["score", str(run or self.run), str(source), str(out or self.path("out.parquet")),
                "--no-progress", *extra]

    def run_copy(self) -> Path:
        copy = self.path("run-copy")
        shutil.copytree(self.run, copy)
        return copy

    def score_damaged(self, damage: Callable[[Path], Any]) -> list[str]:
        run = self.run_copy()
        damage(run)
        return self.score(self.parquet(self.rows, "in.parquet"), run=run)


@dataclasses.dataclass
class Case:
    """One bad input: `make(env)` writes the files and returns the command line."""

    id: str
    make: Callable[[Env], list[str]]
    names: str  # a regex the error line must match: the file, column or key at fault
    kind: str = "error"  # "error", "usage" (argparse) or "warning"
    root_skips: bool = False  # file permissions do not bind root


def _frame_with(env: Env, **columns: Any) -> pd.DataFrame:
    frame = env.frame.copy()
    for name, value in columns.items():
        frame[name] = value
    return frame


def _first_rows(values: list[Any], n: int) -> np.ndarray:
    out = np.full(n, values[-1], dtype=object)
    out[: len(values)] = values
    return out


def _inf_rows(env: Env, column: str, count: int) -> pd.DataFrame:
    frame = env.frame.copy()
    frame[column] = frame[column].astype("float64")
    frame.loc[: count - 1, column] = np.inf
    return frame


def _float64_huge(env: Env, column: str, value: float, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    frame = (env.frame if frame is None else frame).copy()
    frame[column] = frame[column].astype("float64")
    frame.loc[frame.index[5], column] = value
    return frame


def _damaged_parquet(env: Env, frame: pd.DataFrame, name: str) -> Path:
    path = env.parquet(frame, name)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 256] = np.random.default_rng(2).bytes(256)
    path.write_bytes(bytes(data))
    return path


def _truncated_gzip(env: Env, frame: pd.DataFrame, name: str) -> Path:
    data = gzip.compress(frame.to_csv(index=False).encode())
    return env.raw(data[: len(data) // 2], name)


def _config_text(text: str) -> Callable[[Env], list[str]]:
    return lambda env: env.train(env.raw(text, "c.yaml"))


def _config(changes: Any) -> Callable[[Env], list[str]]:
    return lambda env: env.train(env.config(changes))


def _override(*overrides: str) -> Callable[[Env], list[str]]:
    return lambda env: env.train(env.config(), *overrides)


def _write(path: Path, data: bytes | str) -> None:
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def _lambda_model(run: Path) -> None:
    import keras
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(run / "model.keras")
    record = json.loads((run / "run.json").read_text())
    record.pop("fingerprint", None)
    _write(run / "run.json", json.dumps(record))


def _other_features(run: Path) -> None:
    features = json.loads((run / "features.json").read_text())
    features["numeric_columns"] = features["numeric_columns"][:-1]
    features["numeric"] = features["numeric"][:-1]
    _write(run / "features.json", json.dumps(features))


def _unreadable(path: Path) -> Path:
    path.chmod(0)
    return path


CASES: list[Case] = [
    # -- training data (data.path) -----------------------------------------------------------------
    Case("data-missing-file", lambda e: e.train_on(e.path("nope.parquet")), r"nope\.parquet"),
    Case("data-empty-csv", lambda e: e.train_on(e.raw(b"", "empty.csv")), r"empty\.csv"),
    Case("data-empty-parquet", lambda e: e.train_on(e.raw(b"", "empty.parquet")), r"empty\.parquet"),
    Case("data-header-only-csv", lambda e: e.train_on(e.raw("x0,x1,x2,x3,y0,y1\n", "head.csv")), r"head\.csv"),
    Case("data-zero-row-parquet", lambda e: e.train_on(e.parquet(e.frame.iloc[:0], "zero.parquet")),
         r"zero\.parquet"),
    Case("data-truncated-csv-gz", lambda e: e.train_on(_truncated_gzip(e, e.frame, "cut.csv.gz")),
         r"cut\.csv\.gz"),
    Case("data-damaged-parquet-bytes", lambda e: e.train_on(_damaged_parquet(e, e.frame, "bad.parquet")),
         r"bad\.parquet.*CRC"),
    Case("data-garbage-as-parquet", lambda e: e.train_on(e.raw(os.urandom(4000), "noise.parquet")),
         r"noise\.parquet"),
    Case("data-text-as-parquet", lambda e: e.train_on(e.raw("x0,y0\n1,2\n", "text.parquet")), r"text\.parquet"),
    Case("data-binary-as-csv", lambda e: e.train_on(e.raw(b"\x00\xff\xfe" + os.urandom(3000), "bin.csv")),
         r"bin\.csv"),
    Case("data-utf16-csv", lambda e: e.train_on(e.raw(e.frame.to_csv(index=False).encode("utf-16"), "u16.csv")),
         r"u16\.csv"),
    Case("data-latin1-strings-csv", lambda e: e.train_on(
        e.raw(e.frame.assign(shop="caf\xe9").to_csv(index=False).encode("latin-1"), "latin.csv"),
        {"features": [{"name": "x*", "kind": "numeric"}, {"name": "shop", "kind": "categorical"}]}),
         r"latin\.csv"),
    Case("data-unsupported-extension", lambda e: e.train_on(e.raw("x0\n1\n", "t.xlsx")), r"t\.xlsx"),
    Case("data-empty-folder", lambda e: e.train_on(e.path("folder")) if e.path("folder").mkdir() is None else [],
         r"folder"),
    Case("data-unreadable-file", lambda e: e.train_on(_unreadable(e.parquet(e.frame, "locked.parquet"))),
         r"locked\.parquet", root_skips=True),
    Case("data-duplicate-column-csv", lambda e: e.train_on(e.raw("x0,x1,x0,y0,y1\n1,2,3,4,5\n", "dup.csv")),
         r"'x0'.*dup\.csv"),
    Case("data-label-inf", lambda e: e.train_on(e.parquet(_inf_rows(e, "y0", 40), "inf.parquet")),
         r"'y0'.*inf"),
    Case("data-feature-inf", lambda e: e.train_on(e.parquet(_inf_rows(e, "x1", 40), "inf.parquet")),
         r"'x1'.*inf"),
    Case("data-feature-all-missing", lambda e: e.train_on(e.parquet(_frame_with(e, x2=np.nan), "nan.parquet")),
         r"'x2'.*entirely missing"),
    Case("data-beyond-float32", lambda e: e.train_on(e.parquet(_float64_huge(e, "x3", 3e301), "huge.parquet")),
         r"'x3'.*huge\.parquet"),
    Case("data-label-beyond-float32", lambda e: e.train_on(e.parquet(_float64_huge(e, "y1", -1e300), "h.parquet")),
         r"'y1'.*h\.parquet"),
    Case("data-string-label-regression", lambda e: e.train_on(
        e.parquet(_frame_with(e, y0=_first_rows(["high", "low"], 400)), "s.parquet")), r"'y0'"),
    Case("data-string-numeric-feature", lambda e: e.train_on(
        e.parquet(_frame_with(e, x1=_first_rows(["a", "b"], 400)), "s.parquet")), r"'x1'"),
    Case("data-misspelled-label", lambda e: e.train_on(
        e.data, {"tasks": [{"name": "y0", "kind": "regression", "label": "y_0"},
                           {"name": "y1", "kind": "regression"}]}), r"'y_0'"),
    Case("data-misspelled-feature", lambda e: e.train_on(
        e.data, {"features": [{"name": "x*", "kind": "numeric"}, {"name": "shopp", "kind": "categorical"}]}),
         r"'shopp'"),
    Case("data-feature-pattern-matches-nothing", lambda e: e.train_on(
        e.data, {"features": [{"name": "z*", "kind": "numeric"}]}), r"z\*"),
    Case("data-binary-label-out-of-range", lambda e: e.train_on(
        e.parquet(_frame_with(e, y0=np.arange(400) % 3), "b.parquet"),
        {"tasks": [{"name": "y0", "kind": "binary"}, {"name": "y1", "kind": "regression"}]}), r"'y0'"),
    Case("data-all-labels-missing", lambda e: e.train_on(
        e.parquet(_frame_with(e, y0=np.nan, y1=np.nan), "nolabels.parquet")), r"y0|y1|label"),
    Case("data-csv-ragged-rows", lambda e: e.train_on(e.raw("x0,x1,x2,x3,y0,y1\n1,2,3,4,5,6\n1,2,3,4,5,6,7,8\n",
                                                            "ragged.csv")), r"ragged\.csv"),
    Case("data-folder-of-mixed-schemas", lambda e: e.train_on(_mixed_folder(e)), r"mixed"),

    # -- scoring inputs (mtrec score RUN INPUT OUTPUT) -----------------------------------------------
    Case("score-output-is-input", lambda e: e.score(p := e.parquet(e.rows, "in.parquet"), out=p),
         r"is the input file"),
    Case("score-output-is-directory", lambda e: e.score(e.parquet(e.rows, "in.parquet"), out=e.tmp),
         r"is a directory"),
    Case("score-output-inside-input-folder", lambda e: e.score(_folder(e), out=e.path("shards/out.parquet")),
         r"inside the input folder"),
    Case("score-missing-input", lambda e: e.score(e.path("nope.parquet")), r"nope\.parquet"),
    Case("score-empty-input", lambda e: e.score(e.raw(b"", "empty.parquet")), r"empty\.parquet"),
    Case("score-empty-csv", lambda e: e.score(e.raw(b"", "empty.csv")), r"empty\.csv"),
    Case("score-truncated-csv-gz", lambda e: e.score(_truncated_gzip(e, e.rows, "cut.csv.gz")), r"cut\.csv\.gz"),
    Case("score-damaged-parquet", lambda e: e.score(_damaged_parquet(e, e.rows, "in.parquet")),
         r"in\.parquet.*CRC"),
    Case("score-garbage-input", lambda e: e.score(e.raw(os.urandom(5000), "in.parquet")), r"in\.parquet"),
    Case("score-missing-feature-column", lambda e: e.score(e.parquet(e.rows.drop(columns=["x2"]), "in.parquet")),
         r"'x2'"),
    Case("score-string-feature", lambda e: e.score(
        e.parquet(e.rows.assign(x1=_first_rows(["a", "b"], 400)), "in.parquet")), r"'x1'"),
    Case("score-duplicate-columns-csv", lambda e: e.score(
        e.raw("x0,x1,x2,x3,x1\n1,2,3,4,5\n", "dup.csv")), r"'x1'.*dup\.csv"),
    Case("score-beyond-float32", lambda e: e.score(
        e.parquet(_float64_huge(e, "x0", -1e39, e.rows), "in.parquet")), r"'x0'.*in\.parquet"),
    Case("score-feature-inf", lambda e: e.score(
        e.parquet(_inf_rows(e, "x3", 40).drop(columns=["y0", "y1"]), "in.parquet")), r"'x3'.*inf"),
    Case("score-utf16-csv", lambda e: e.score(e.raw(e.rows.to_csv(index=False).encode("utf-16"), "u16.csv")),
         r"u16\.csv"),
    Case("score-unsupported-extension", lambda e: e.score(e.raw("x0\n1\n", "in.json")), r"in\.json"),
    Case("score-empty-input-folder", lambda e: e.score(e.path("folder")) if e.path("folder").mkdir() is None
         else [], r"folder"),
    Case("score-unreadable-input", lambda e: e.score(_unreadable(e.parquet(e.rows, "locked.parquet"))),
         r"locked\.parquet", root_skips=True),
    Case("score-run-dir-missing", lambda e: e.score(e.parquet(e.rows, "in.parquet"), run=e.path("norun")),
         r"norun"),
    Case("score-run-dir-is-a-file", lambda e: e.score(e.parquet(e.rows, "in.parquet"), run=e.raw("x", "runfile")),
         r"runfile"),
    Case("score-run-dir-of-a-failed-run", lambda e: e.score(e.parquet(e.rows, "in.parquet"), run=_failed_run(e)),
         r"failed"),
    Case("score-batch-size-zero", lambda e: e.score(e.data, "--batch-size", "0"), r"--batch-size", "usage"),
    Case("score-batch-size-negative", lambda e: e.score(e.data, "--batch-size", "-5"), r"--batch-size", "usage"),
    Case("score-batch-size-text", lambda e: e.score(e.data, "--batch-size", "ten"), r"--batch-size", "usage"),
    Case("score-unknown-option", lambda e: e.score(e.data, "--batchsize", "5"), r"--batchsize", "usage"),
    Case("score-all-missing-feature", lambda e: e.score(e.parquet(e.rows.assign(x2=np.nan), "in.parquet")),
         r"\['x2'\] of .*in\.parquet are entirely missing", "warning"),
    Case("score-few-inf-features", lambda e: e.score(
        e.parquet(_inf_rows(e, "x3", 2).drop(columns=["y0", "y1"]), "in.parquet")), r"'x3': 2", "warning"),

    # -- configs (mtrec train -c CONFIG) -----------------------------------------------------------
    Case("config-missing-file", lambda e: e.train(e.path("nope.yaml")), r"nope\.yaml"),
    Case("config-empty-file", _config_text(""), r"c\.yaml.*empty"),
    Case("config-yaml-syntax", _config_text("name: [unclosed\nseed: 1\n"), r"c\.yaml.*YAML"),
    Case("config-tab-indented", _config_text("name: x\ndata:\n\tpath: a.parquet\n"), r"c\.yaml"),
    Case("config-top-level-list", _config_text("- a\n- b\n"), r"mapping|list"),
    Case("config-binary-file", lambda e: e.train(e.raw(os.urandom(2000), "c.yaml")), r"c\.yaml"),
    Case("config-utf16-file", lambda e: e.train(e.raw(yaml.safe_dump(BASE).encode("utf-16"), "c.yaml")),
         r"c\.yaml"),
    Case("config-is-a-directory", lambda e: e.train(e.path("conf")) if e.path("conf").mkdir() is None else [],
         r"conf"),
    Case("config-unreadable", lambda e: e.train(_unreadable(e.config())), r"c\.yaml", root_skips=True),
    Case("config-unknown-top-key", _config({"trainng": {"epochs": 2}}), r"trainng"),
    Case("config-unknown-model-kind", _config({"model": {"kind": "mmeo"}}), r"mmeo"),
    Case("config-misspelled-model-key", _config({"model": {"num_expert": 4}}), r"num_expert"),
    Case("config-zero-experts", _config({"model": {"num_experts": 0}}), r"num_experts"),
    Case("config-negative-units", _config({"model": {"expert": {"units": [-8]}}}), r"units"),
    Case("config-units-wrong-type", _config({"model": {"tower_units": "eight"}}), r"tower_units"),
    Case("config-negative-epochs", _config({"training": {"epochs": -1}}), r"epochs"),
    Case("config-epochs-text", _config({"training": {"epochs": "ten"}}), r"epochs"),
    Case("config-epochs-float", _config({"training": {"epochs": 2.5}}), r"epochs"),
    Case("config-batch-size-zero", _config({"training": {"batch_size": 0}}), r"batch_size"),
    Case("config-learning-rate-negative", _config({"training": {"learning_rate": -0.1}}), r"learning_rate"),
    Case("config-learning-rate-text", _config({"training": {"learning_rate": "fast"}}), r"learning_rate"),
    Case("config-unknown-optimizer", _config({"training": {"optimizer": "adamm"}}), r"adamm"),
    Case("config-scoring-batch-size-zero", _config({"scoring": {"batch_size": 0}}), r"scoring\.batch_size"),
    Case("config-unknown-task-kind", _config({"tasks": [{"name": "y0", "kind": "regresion"}]}), r"regresion"),
    Case("config-task-without-name", _config({"tasks": [{"kind": "regression"}]}), r"name"),
    Case("config-duplicate-task-names", _config({"tasks": [{"name": "y0", "kind": "regression"}] * 2}), r"y0"),
    Case("config-no-tasks", _config({"tasks": []}), r"tasks"),
    Case("config-tasks-not-a-list", _config({"tasks": "y0"}), r"tasks"),
    Case("config-negative-task-weight", _config({"tasks": [{"name": "y0", "kind": "regression", "weight": -1}]}),
         r"weight"),
    Case("config-unknown-feature-kind", _config({"features": [{"name": "x*", "kind": "numerical"}]}),
         r"numerical"),
    Case("config-no-features", _config({"features": []}), r"features"),
    Case("config-unknown-weighting", _config({"weighting": {"kind": "uncertainity"}}), r"uncertainity"),
    Case("config-weighting-bad-value", _config({"weighting": {"kind": "dwa", "temperature": -2}}), r"temperature"),
    Case("config-unknown-monitor", _config({"training": {"early_stopping": {"monitor": "val_y0_auc"}}}),
         r"val_y0_auc"),
    Case("config-negative-patience", _config({"training": {"early_stopping": {"patience": -3}}}), r"patience"),
    Case("config-split-fractions-over-one", _config({"data": {"split": {"fractions": [0.8, 0.3, 0.1]}}}),
         r"fractions"),
    Case("config-unknown-split-kind", _config({"data": {"split": {"kind": "randon"}}}), r"randon"),
    Case("config-nonfinite-fraction-above-one", _config({"data": {"max_nonfinite_fraction": 2}}),
         r"max_nonfinite_fraction"),
    Case("config-na-values-not-a-list", _config({"data": {"na_values": 5}}), r"na_values"),
    Case("config-data-path-wrong-type", _config({"data": {"path": {"file": "a.parquet"}}}), r"data\.path"),
    Case("config-seed-text", _config({"seed": "abc"}), r"seed"),
    Case("config-unknown-override", _override("training.epoch=3"), r"training\.epoch"),
    Case("config-override-without-value", _override("training.epochs"), r"training\.epochs"),
    Case("config-override-bad-yaml", _override("model.tower_units=[8"), r"model\.tower_units"),
    Case("config-run-dir-is-a-file", lambda e: ["train", "-c", str(e.config()), "--run-dir", str(e.raw("x", "rf"))],
         r"rf"),
    Case("config-run-dir-holds-a-completed-run", lambda e: ["train", "-c", str(e.config()), "--run-dir",
                                                            str(e.run_copy())], r"--overwrite"),

    # -- run files (mtrec score with a damaged run directory) ----------------------------------------
    Case("run-model-truncated", lambda e: e.score_damaged(
        lambda r: _write(r / "model.keras", (r / "model.keras").read_bytes()[:3000])), r"model\.keras.*truncated"),
    Case("run-model-garbage", lambda e: e.score_damaged(
        lambda r: _write(r / "model.keras", os.urandom((r / "model.keras").stat().st_size))), r"model\.keras"),
    Case("run-model-empty", lambda e: e.score_damaged(lambda r: _write(r / "model.keras", b"")), r"model\.keras"),
    Case("run-model-missing", lambda e: e.score_damaged(lambda r: (r / "model.keras").unlink()), r"model\.keras"),
    Case("run-model-is-a-directory", lambda e: e.score_damaged(
        lambda r: ((r / "model.keras").unlink(), (r / "model.keras").mkdir())), r"model\.keras"),
    Case("run-model-safe-mode-refusal", lambda e: e.score_damaged(_lambda_model), r"safe mode"),
    Case("run-features-missing", lambda e: e.score_damaged(lambda r: (r / "features.json").unlink()),
         r"features\.json"),
    Case("run-features-not-json", lambda e: e.score_damaged(lambda r: _write(r / "features.json", "{oops")),
         r"features\.json"),
    Case("run-features-empty", lambda e: e.score_damaged(lambda r: _write(r / "features.json", "")),
         r"features\.json"),
    Case("run-features-of-another-run", lambda e: e.score_damaged(_other_features), r"features\.json"),
    Case("run-features-wrong-structure-no-fingerprint", lambda e: e.score_damaged(
        lambda r: (_write(r / "features.json", "[1, 2]"), _drop_fingerprint(r))), r"features\.json"),
    Case("run-config-missing", lambda e: e.score_damaged(lambda r: (r / "config.yaml").unlink()), r"config\.yaml"),
    Case("run-config-not-yaml", lambda e: e.score_damaged(lambda r: _write(r / "config.yaml", "a: [b\n")),
         r"config\.yaml"),
    Case("run-config-bad-key", lambda e: e.score_damaged(
        lambda r: _write(r / "config.yaml", (r / "config.yaml").read_text() + "extra_key: 1\n")), r"extra_key"),
    Case("run-json-damaged", lambda e: e.score_damaged(lambda r: _write(r / "run.json", "{not json")),
         r"run\.json is unreadable", "warning"),
    Case("run-interrupted-training", lambda e: e.score_damaged(
        lambda r: ((r / "model.keras").unlink(), _write(r / "run.json", json.dumps(
            {"status": "running", "pid": 999999, "host": "h", "epochs": 3})))), r"interrupted"),
]


def _drop_fingerprint(run: Path) -> None:
    record = json.loads((run / "run.json").read_text())
    record.pop("fingerprint", None)
    _write(run / "run.json", json.dumps(record))


def _folder(env: Env) -> Path:
    folder = env.path("shards")
    folder.mkdir()
    write_parquet(env.rows, folder / "part-0.parquet")
    return folder


def _mixed_folder(env: Env) -> Path:
    folder = env.path("mixed")
    folder.mkdir()
    write_parquet(env.frame.iloc[:200], folder / "part-0.parquet")
    write_parquet(env.frame.iloc[200:].rename(columns={"x1": "x9"}), folder / "part-1.parquet")
    return folder


def _failed_run(env: Env) -> Path:
    run = env.path("failed")
    run.mkdir()
    _write(run / "run.json", json.dumps({"status": "failed", "error": "DataError: boom"}))
    return run


FINAL_NAMES = ("out.parquet", "run/model.keras", "run/report.json", "run/report.md", "shards/out.parquet")


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[pd.DataFrame, Path, Path]:
    root = tmp_path_factory.mktemp("bad-inputs")
    frame = make_synthetic(400, num_features=4, correlation=0.5, seed=3)
    data = root / "data.parquet"
    write_parquet(frame, data)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(_merge(BASE, {"data": {"path": str(data)}})))
    assert main(["train", "-c", str(config), "--run-dir", str(root / "run")]) == 0
    return frame, data, root / "run"


def test_the_corpus_is_large_and_distinct():
    assert len(CASES) >= 67 and len({c.id for c in CASES}) == len(CASES)
    groups = {c.id.split("-")[0] for c in CASES}
    assert groups == {"data", "score", "config", "run"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's overflow warnings must not precede the error
def test_a_bad_input_is_one_named_line(case: Case, shared, tmp_path, capsys):
    if case.root_skips and os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    frame, data, run = shared
    env = Env(tmp_path, frame, data, run)
    argv = case.make(env)
    capsys.readouterr()
    if case.kind == "warning":
        with pytest.warns(UserWarning, match=case.names):
            code = main(argv)
        assert code == 0, capsys.readouterr().err
        return
    if case.kind == "usage":
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        code = exit_info.value.code
    else:
        code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    if case.kind == "usage":
        assert lines[0].startswith("usage: mtrec "), err
        lines = lines[-1:]
    assert code == 2, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"mtrec {argv[0]}: error: "), line
    assert "Traceback" not in err and "(unexpected" not in line, line
    assert __import__("re").search(case.names, line), f"{case.names!r} not in: {line}"
    left = [name for name in FINAL_NAMES if (tmp_path / name).exists()]
    assert left == [], left
    temporaries = [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert temporaries == [], temporaries

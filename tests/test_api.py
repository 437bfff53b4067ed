"""The top-level API: every model and layer exported, no internals, and a cheap `import mtrec`."""

import inspect
import json
import subprocess
import sys

import keras
import pytest

import mtrec
import mtrec.layers
import mtrec.models
from mtrec.utils.config_file import parse_yaml, read_config_file
from tests.conftest import REPO

#: Gradient and weighting internals that `mtrec/__init__.py` used to export.
INTERNALS = {"per_task_gradients", "split_variables", "task_losses", "project_conflicting", "conflict_rate",
             "min_norm_weights", "check_gradient_backend"}


def test_every_model_kind_is_exported_at_top_level():
    for kind, cls in mtrec.models.MODEL_KINDS.items():
        assert getattr(mtrec, cls.__name__) is cls, kind
        assert cls.__name__ in mtrec.__all__


def test_every_layer_class_is_exported_at_top_level():
    classes = [n for n in mtrec.layers.__all__ if inspect.isclass(getattr(mtrec.layers, n))]
    for name in classes:
        assert getattr(mtrec, name) is getattr(mtrec.layers, name), name
        assert name in mtrec.__all__
    # The nine layers of the first release at least (specs such as ExpertSpec come on top).
    assert sum(issubclass(getattr(mtrec, n), keras.layers.Layer) for n in classes) >= 9


def test_every_exported_name_resolves_and_none_is_private_or_internal():
    assert len(mtrec.__all__) == len(set(mtrec.__all__))
    for name in mtrec.__all__:
        assert not name.startswith("_"), name
        assert getattr(mtrec, name) is not None, name
    assert not INTERNALS & set(mtrec.__all__)
    assert not INTERNALS & set(dir(mtrec))
    with pytest.raises(AttributeError, match="split_variables"):
        mtrec.split_variables  # noqa: B018
    # The documented entry points.
    for name in ("load_config", "train", "load_run", "score_file", "make_synthetic", "analyze_run_gates",
                 "transfer_report", "train_retrieval", "load_recommend_config"):
        assert callable(getattr(mtrec, name)), name
    # Subpackages stay reachable as attributes.
    assert mtrec.weighting.per_task_gradients is not None


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_mtrec_loads_no_framework_and_no_optional_dependency():
    loaded = _modules_after("import mtrec")
    heavy = {"tensorflow", "keras", "tensorflow_recommenders", "lightgbm", "matplotlib", "pandas"}
    assert not heavy & loaded, heavy & loaded
    # Using the models loads Keras (and TensorFlow) but still no optional dependency.
    loaded = _modules_after("import mtrec\nmtrec.MMoE, mtrec.train, mtrec.score_file, mtrec.load_run")
    assert "keras" in loaded
    assert not {"tensorflow_recommenders", "lightgbm", "mtrec.analysis.plots"} & loaded


def test_one_config_reader_reads_yaml_1_2_floats_and_json(tmp_path):
    assert parse_yaml("1e-4") == pytest.approx(1e-4) and isinstance(parse_yaml("1e-4"), float)
    assert parse_yaml("[3, .5, 2.0E+1, 1_000, abc, 1e3x]") == [3, 0.5, 20.0, 1000, "abc", "1e3x"]
    (tmp_path / "a.yaml").write_text("training: {learning_rate: 1e-5}\n")
    (tmp_path / "a.json").write_text(json.dumps({"training": {"learning_rate": 1e-5}}))
    assert read_config_file(tmp_path / "a.yaml") == read_config_file(tmp_path / "a.json") == {
        "training": {"learning_rate": 1e-5}}
    raw = mtrec.config.apply_overrides({"training": {}}, ["training.learning_rate=3e-4"])
    assert raw["training"]["learning_rate"] == pytest.approx(3e-4)
    config = mtrec.load_config(REPO / "configs/quickstart.yaml", ["training.learning_rate=1e-4"])
    assert config.training.learning_rate == pytest.approx(1e-4)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(mtrec.ConfigError, match="bad.json is not valid JSON"):
        read_config_file(tmp_path / "bad.json")
    # The experiment config's reader is this one.
    assert mtrec.config.read_config_file is read_config_file

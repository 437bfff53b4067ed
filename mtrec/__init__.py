"""mtrec: multi-task learning for recommendations and tabular prediction on Keras 3.

The public API is re-exported here: every model and layer class, and the
entry points of a run::

    import mtrec
    config = mtrec.load_config("configs/quickstart.yaml")
    result = mtrec.train(config, "runs/demo")
    mtrec.score_file("runs/demo", "rows.parquet", "scores.parquet")

Each name is imported on first use, so `import mtrec` (and the `mtrec`
command's start, which must quiet TensorFlow before it loads) imports neither
Keras nor TensorFlow. The model and layer classes are the `__all__` of
`mtrec.models` and `mtrec.layers`. To reload a `.keras` file with plain
`keras.saving.load_model`, import `mtrec.models` first (it registers the
classes), or use `mtrec.load_run`.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

#: Subpackages whose whole `__all__` is exported: every model and layer.
_CLASS_PACKAGES = ("mtrec.models", "mtrec.layers")

#: The entry points, by the (sub)package that exports them.
_ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "mtrec.config": ("ExperimentConfig", "load_config", "parse_config"),
    "mtrec.errors": ("ConfigError", "DataError", "MtrecError", "NotFittedError", "SchemaError"),
    "mtrec.data": ("SplitConfig", "make_splits", "make_synthetic", "read_table"),
    "mtrec.features": ("CategoricalFeature", "FeatureEncoder", "MultiCategoricalFeature", "NumericFeature",
                       "parse_features"),
    "mtrec.tasks": ("BinaryTask", "MulticlassTask", "RegressionTask", "Task"),
    "mtrec.weighting": ("WEIGHTING_KINDS", "WeightingStrategy", "StaticWeighting", "UncertaintyWeighting",
                        "DynamicWeightAverage", "GradNorm", "PCGrad", "MGDA"),
    "mtrec.training.run": ("RunResult", "train"),
    "mtrec.training.trained_run": ("TrainedRun", "load_run"),
    "mtrec.scoring": ("predict_arrays", "score_file", "score_frame"),
    "mtrec.analysis": ("CollapseThresholds", "analyze_gates", "analyze_run_gates", "check_collapse",
                       "label_correlation", "transfer_between_runs", "transfer_report"),
    "mtrec.recommend": ("Blend", "BlendConfig", "RecommendConfig", "load_recommend_config"),
    "mtrec.retrieval": ("CandidateIndex", "RetrievalConfig", "train_retrieval"),
}

_MODULE_OF = {name: module for module, names in _ENTRY_POINTS.items() for name in names}


def _class_names() -> list[str]:
    return [name for package in _CLASS_PACKAGES for name in importlib.import_module(package).__all__]


def __getattr__(name: str) -> Any:
    if name == "__all__":
        value: Any = _class_names() + list(_MODULE_OF)
    elif name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    elif name.startswith("_"):
        raise AttributeError(f"module 'mtrec' has no attribute '{name}'")
    elif importlib.util.find_spec(f"mtrec.{name}") is not None:
        value = importlib.import_module(f"mtrec.{name}")  # a subpackage: `mtrec.models` after `import mtrec`
    else:
        for package in _CLASS_PACKAGES:
            module = importlib.import_module(package)
            if name in module.__all__:
                value = getattr(module, name)
                break
        else:
            raise AttributeError(f"module 'mtrec' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_class_names(), *_MODULE_OF})

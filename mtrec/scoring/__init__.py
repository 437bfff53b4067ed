"""Batch scoring of trained runs (predictions through `mtrec.training.predict.predict_arrays`).

`score_file`: one table in, one Parquet file out. `score_folder`: a folder of
shards in, one output shard per input shard, restartable.

Each name is imported on first use, so a scoring worker process
(`mtrec.scoring.workers`) can quiet TensorFlow before anything loads it.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each public name lives.
_NAMES = {
    "FolderScoreSummary": "mtrec.scoring.shards",
    "score_folder": "mtrec.scoring.shards",
    "ScoreSummary": "mtrec.scoring.score",
    "score_file": "mtrec.scoring.score",
    "score_frame": "mtrec.scoring.score",
    "predict_arrays": "mtrec.training.predict",
}

__all__ = ["FolderScoreSummary", "ScoreSummary", "predict_arrays", "score_file", "score_folder", "score_frame"]


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'mtrec.scoring' has no attribute {name!r}")
    return getattr(importlib.import_module(_NAMES[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""The SavedModel endpoints' calling form and the atomic write shared by `export_run` and `export_recommender`."""

from __future__ import annotations

import inspect
import json
import keyword
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tensorflow as tf

#: The JSON file written beside the SavedModel: inputs, outputs, run.
MANIFEST = "mtrec_export.json"


def keyword_endpoint(fn: Callable[[dict[str, tf.Tensor]], dict[str, tf.Tensor]],
                     specs: dict[str, tf.TensorSpec]) -> tuple[Callable, list]:
    """`fn(dict)` as a function of one argument per input, so TensorFlow names a missing or mistyped column.

    A loaded SavedModel's `model.serving_default(age=..., city=...)` then
    fails with "missing a required argument: 'city'" or "Can not cast
    TensorSpec(..., dtype=tf.float32, name='age') to TensorSpec(...,
    dtype=tf.float64, name='age')"; the signature is the same as with a
    dict argument. Arguments are named by the specs' names (the inputs'
    names); names that are not Python identifiers keep the dict form (one
    argument, a dict keyed by column).

    Returns:
        The function and the `input_signature` to trace it with.
    """
    columns, names = list(specs), [spec.name for spec in specs.values()]
    if not all(name.isidentifier() and not keyword.iskeyword(name) for name in names):
        return (lambda inputs: fn(inputs)), [specs]

    def endpoint(*args):
        return fn(dict(zip(columns, args)))

    endpoint.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
    return endpoint, list(specs.values())


def write_archive(archive: Any, out_dir: Path, manifest: dict[str, Any]) -> None:
    """Writes the archive and its manifest beside `out_dir`, then renames it onto `out_dir`."""
    partial = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        archive.write_out(str(partial), verbose=False)
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(partial, out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)

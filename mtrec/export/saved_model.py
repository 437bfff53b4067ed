"""`export_run`: a finished run as one TensorFlow SavedModel, raw columns in, every task's score out.

The SavedModel is written with Keras 3's `keras.export.ExportArchive` and
needs neither mtrec, pandas nor Keras to serve: `tf.saved_model.load` or TF
Serving. Signatures:

    serving_default  {raw feature column: [n]} -> {task: [n], ...}
    serve_batch      the same inputs plus the config's `data.id_columns`
                     (strings) -> the id columns unchanged, then the scores
                     (an id column whose name TensorFlow refuses as an
                     input name, e.g. the pipelines' `__split__`, is left out)

Outputs per task (auxiliary tasks are left out, as in `mtrec score`):
binary, regression and count `<task>` float32 `[n]` (label units); multiclass
`<task>` `[n]`, the class: its value with `classes:` (int64, float64 or string, as
`mtrec score` writes it), else its index (int32); and `<task>_proba` float32
`[n, classes]`; an ESMM-chained
task also `<task>_conditional`. With `gates=True`, `gate_<key>` float32
`[n, experts]` per gate of `MultiTaskModel.gate_weights` (`/` written `_`);
with a blend, `score` float64 `[n]` as `mtrec recommend` blends.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Any

import tensorflow as tf

from mtrec.errors import ConfigError, DataError
from mtrec.export.endpoints import MANIFEST, keyword_endpoint, write_archive
from mtrec.export.graph_encoder import GraphEncoder
from mtrec.recommend.blend import PRODUCT_FLOOR, Blend, BlendConfig
from mtrec.tasks import MulticlassTask
from mtrec.tasks.multiclass import class_array
from mtrec.training.trained_run import TrainedRun, load_run

#: Name of the batch endpoint (the id columns passed through).
BATCH_ENDPOINT = "serve_batch"
#: What TensorFlow accepts as a signature input name.
VALID_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")


@dataclasses.dataclass
class ExportSummary:
    """What `export_run` wrote."""

    out_dir: Path
    inputs: list[dict[str, Any]]
    outputs: list[str]
    id_columns: list[str]
    left_out: list[str]
    seconds: float


def scores_from_predictions(run: TrainedRun, predictions: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """`mtrec.scoring.score`'s output columns, as tensors: one (or two) per non-auxiliary task."""
    out: dict[str, tf.Tensor] = {}
    for task in run.config.tasks:
        if task.auxiliary:
            continue
        value = tf.cast(predictions[task.name], tf.float32)
        if isinstance(task, MulticlassTask):
            best = tf.argmax(value, axis=1)
            # With `classes:`, the class value (as `mtrec score` writes it), else its index.
            out[task.name] = (tf.gather(tf.constant(class_array(task.classes)), best)
                              if isinstance(task.classes, list) else tf.cast(best, tf.int32))
            out[f"{task.name}_proba"] = value
        else:
            out[task.name] = tf.reshape(value, [-1])
        parent = getattr(task, "after", None)
        if parent is not None:
            joint = tf.reshape(value, [-1])
            prior = tf.reshape(tf.cast(predictions[parent], tf.float32), [-1])
            out[f"{task.name}_conditional"] = tf.where(
                prior > 0, joint / tf.maximum(prior, 1e-12), tf.zeros_like(joint))
    return out


def blend_scores(blend: Blend, scores: dict[str, tf.Tensor]) -> tf.Tensor:
    """`Blend.__call__` in the graph: the float64 blended score of each row."""
    blend.check(list(scores), "the exported scores")
    total = None
    for name, weight in blend.config.weights.items():
        value = tf.cast(scores[name], tf.float64)
        term = weight * (value if blend.config.kind == "sum"
                         else tf.math.log(tf.maximum(value, PRODUCT_FLOOR)))
        total = term if total is None else total + term
    return total if blend.config.kind == "sum" else tf.exp(total)


def read_blend(path: str | os.PathLike) -> BlendConfig:
    """A blend from a YAML file: a recommend config (its `blend` section) or `{kind, weights}` alone.

    Raises:
        ConfigError: the file is missing or holds no blend.
    """
    import yaml

    from mtrec.utils.validation import from_config

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Blend file {path} does not exist.")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"Blend file {path} must hold a mapping with `blend` or `kind`/`weights`.")
    section = raw.get("blend", raw)
    return from_config(BlendConfig, section, "blend")


def export_run(run_dir: str | os.PathLike | TrainedRun, out_dir: str | os.PathLike, gates: bool = False,
               blend: BlendConfig | None = None, overwrite: bool = False) -> ExportSummary:
    """Writes a finished run as a SavedModel that scores raw columns.

    Args:
        run_dir: a finished run directory (or a loaded `TrainedRun`).
        out_dir: the SavedModel folder to write (atomically: a failed export
            leaves no folder).
        gates: bool. Also return the gate weights (gated models only).
            Defaults to `False`.
        blend: a `BlendConfig`; adds the blended `score` output.
        overwrite: bool. Replace an existing `out_dir`. Defaults to `False`.

    Returns:
        An `ExportSummary`.

    Raises:
        DataError: the run is not finished (its missing files are named),
            or `out_dir` exists without `overwrite`.
        ConfigError: `gates` on a model without gates, a blend naming
            a score the run does not output, or a Keras backend other than
            TensorFlow in this process.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            f"mtrec export writes a TensorFlow graph and needs Keras' TensorFlow backend; this process "
            f"runs '{keras.backend.backend()}'. A run trained on JAX exports the same way: run "
            f"`KERAS_BACKEND=tensorflow mtrec export RUN_DIR OUT_DIR` (model.keras loads on either backend).")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise DataError(f"Export folder {out_dir} already exists; choose another or pass --overwrite.")
    run = run_dir if isinstance(run_dir, TrainedRun) else load_run(run_dir)
    model = run.model
    if gates and not model.gated:
        raise ConfigError(f"--gates needs a gated model (MMoE, OMoE, CGC, PLE); the run's model is "
                          f"{type(model).__name__}.")
    mixer = Blend(blend) if blend is not None else None
    encoder = GraphEncoder(run.encoder, na_values=getattr(run.config.data, "na_values", ()) or ())
    feature_specs = encoder.input_signature()
    # Inputs are named by internal names (mtrec.features.names), valid for any column name.
    bad = [c for c, spec in feature_specs.items() if not VALID_NAME.match(spec.name)]
    if bad:
        raise ConfigError(f"Feature column(s) {bad} cannot be SavedModel input names (TensorFlow accepts "
                          f"{VALID_NAME.pattern}); rename the column(s) and train again.")
    # An id column TensorFlow cannot name (e.g. the pipelines' `__split__` marker) is left out of serve_batch.
    id_columns = [c for c in run.config.data.id_columns if VALID_NAME.match(c)]
    left_out = [c for c in run.config.data.id_columns if not VALID_NAME.match(c)]
    batch_specs = {**feature_specs, **{c: tf.TensorSpec([None], tf.string, name=c)
                                       for c in id_columns if c not in feature_specs}}

    def score(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        features = encoder(inputs)
        out = scores_from_predictions(run, model(features, training=False))
        if mixer is not None:
            out["score"] = blend_scores(mixer, out)
        if gates:
            weights = model._task_representations(features, training=False)[1]
            out.update({f"gate_{k.replace('/', '_')}": tf.cast(v, tf.float32) for k, v in weights.items()})
        return out

    def serve_batch(inputs):
        ids = {c: inputs[c] for c in id_columns}
        return {**ids, **score(inputs)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(encoder)
    # One argument per input: `loaded.serving_default(age=..., ...)` names a missing or mistyped column.
    function, signature = keyword_endpoint(score, feature_specs)
    serving = archive.add_endpoint("serving_default", function, input_signature=signature)
    function, signature = keyword_endpoint(serve_batch, batch_specs)
    archive.add_endpoint(BATCH_ENDPOINT, function, input_signature=signature)
    outputs = list(serving.get_concrete_function().structured_outputs)
    manifest = {"format": "mtrec.export", "version": 1, "run_dir": str(run.run_dir),
                "model": type(model).__name__, "signatures": ["serving_default", BATCH_ENDPOINT],
                "inputs": encoder.describe_inputs(),
                "id_columns": id_columns, "id_columns_left_out": left_out, "outputs": outputs}
    write_archive(archive, out_dir, manifest)
    return ExportSummary(out_dir, manifest["inputs"], outputs, id_columns, left_out,
                         time.perf_counter() - started)


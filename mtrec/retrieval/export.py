"""Saving the trained towers and a TFRS BruteForce top-K index as SavedModels (Keras 2 only).

The SavedModels are plain TensorFlow graphs: `mtrec.retrieval.index`
loads them with `tf.saved_model.load` in any process, Keras 3 included,
without TFRS or tf_keras.

Signatures (`serving_default`):
    query_tower/      {query feature: [n]} -> {"embedding": [n, d]}
    candidate_tower/  {candidate feature: [n]} -> {"embedding": [n, d]}
    index/            {query feature: [n]}, k -> {"scores": [n, k], "ids": [n, k] (strings)}
"""

from __future__ import annotations

from mtrec.retrieval.legacy import require_legacy_keras

require_legacy_keras(__name__)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from mtrec.retrieval.config import TowerFeature  # noqa: E402
from mtrec.retrieval.two_tower import input_signature  # noqa: E402

#: Names of the SavedModel folders in a retrieval run directory.
QUERY_TOWER, CANDIDATE_TOWER, INDEX = "query_tower", "candidate_tower", "index"


def _save(module: tf.Module, path: str | Path) -> None:
    """`tf.saved_model.save` with only the serving signature traced.

    Keras 2 would otherwise trace every layer's call function into the
    SavedModel (its `save_traces`), which triples the export time and is
    not needed: the signature is the one entry point.
    """
    from tf_keras.src.saving.legacy.saved_model import utils as keras_saved_model_utils

    with keras_saved_model_utils.keras_option_scope(save_traces=False):
        tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


class _Serving(tf.Module):
    """Holds a model and its one serving function, so the SavedModel has a named signature."""

    def __init__(self, model: tf.Module, function) -> None:
        super().__init__()
        self.model = model
        self.serve = function


def save_tower(tower: tf.keras.Model, features: list[TowerFeature], path: str | Path) -> None:
    """Saves a tower whose signature maps a dict of raw features to `{"embedding": ...}`."""
    @tf.function(input_signature=[input_signature(features)])
    def serve(inputs):
        return {"embedding": tower(inputs)}

    _save(_Serving(tower, serve), path)


def build_index(candidate_embeddings: np.ndarray | tf.Tensor, identifiers: np.ndarray,
                query_model: tf.keras.Model | None = None, k: int = 100) -> tfrs.layers.factorized_top_k.BruteForce:
    """A TFRS BruteForce index over the candidates (exact dot-product top K).

    Args:
        candidate_embeddings: `(num_candidates, d)` float array.
        identifiers: `(num_candidates,)` ids returned by queries (strings).
        query_model: maps raw query features to embeddings; None when the
            queries are embeddings already.
        k: default number of results.
    """
    index = tfrs.layers.factorized_top_k.BruteForce(query_model, k=k)
    index.index(tf.convert_to_tensor(candidate_embeddings, tf.float32),
                tf.constant([str(i).encode("utf-8") for i in identifiers], tf.string))
    return index


def save_index(index: tfrs.layers.factorized_top_k.BruteForce, signature: dict[str, tf.TensorSpec] | tf.TensorSpec,
               num_candidates: int, path: str | Path) -> None:
    """Saves the index with a signature `(queries, k) -> {"scores", "ids"}`; k is capped at the candidate count."""
    @tf.function(input_signature=[signature, tf.TensorSpec([], tf.int32, name="k")])
    def serve(queries, k):
        scores, ids = index(queries, k=tf.minimum(k, num_candidates))
        return {"scores": scores, "ids": ids}

    _save(_Serving(index, serve), path)


def export_retrieval(model, states, items_inputs: dict[str, np.ndarray], item_ids: np.ndarray,
                     out_dir: str | Path, k: int) -> np.ndarray:
    """Saves both towers and the index over every item into `out_dir`.

    Args:
        model: the trained TwoTowerModel.
        states: the towers' fitted state (unused here; kept beside the model by the caller).
        items_inputs: the candidate tower's inputs for every item.
        item_ids: the items' identifiers (strings), in the same order.
        out_dir: the retrieval run directory.
        k: the index's default k.

    Returns:
        The candidate embeddings, `(num_items, d)`.
    """
    out_dir = Path(out_dir)
    config = model.config
    save_tower(model.query_tower, config.query_features, out_dir / QUERY_TOWER)
    save_tower(model.candidate_tower, config.candidate_features, out_dir / CANDIDATE_TOWER)
    embeddings = np.concatenate([
        model.candidate_tower(batch).numpy()
        for batch in tf.data.Dataset.from_tensor_slices(items_inputs).batch(4096)])
    index = build_index(embeddings, item_ids, query_model=model.query_tower, k=k)
    save_index(index, input_signature(config.query_features), len(item_ids), out_dir / INDEX)
    return embeddings

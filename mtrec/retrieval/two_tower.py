"""The two-tower model on TensorFlow Recommenders (Keras 2 only: see `mtrec.retrieval.legacy`).

A query tower (user id and user features) and a candidate tower (item id and
item features) map rows to `embedding_dim` vectors trained with
`tfrs.tasks.Retrieval` (in-batch softmax); a rating head on the concatenated
vectors adds `tfrs.tasks.Ranking` (MSE), as in the TFRS multitask tutorial.
The loss is `rating_weight * rating_loss + retrieval_weight * retrieval_loss`.

Importing this module in a Keras 3 process raises KerasVersionError with the
command to run instead.
"""

from __future__ import annotations

from mtrec.retrieval.legacy import require_legacy_keras

require_legacy_keras(__name__)

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from mtrec.retrieval.config import RetrievalConfig, TowerFeature  # noqa: E402
from mtrec.retrieval.tower_inputs import fit_tower_state, tower_inputs  # noqa: E402


# --------------------------------------------------------------------------- inputs
# Rows become tower inputs in `mtrec.retrieval.tower_inputs`, shared with the index's queries.


def input_signature(features: list[TowerFeature]) -> dict[str, tf.TensorSpec]:
    """TensorSpecs of a tower's inputs, for SavedModel signatures."""
    return {f.name: tf.TensorSpec([None], tf.float32 if f.kind == "numeric" else tf.string, name=f.name)
            for f in features}


# --------------------------------------------------------------------------- towers


class Tower(tf.keras.Model):
    """One tower: embeddings of categorical inputs, standardized numerics, then Dense layers.

    Args:
        features: the tower's inputs.
        state: `fit_tower_state` output for them.
        embedding_dim: int. Width of the output.
        layers: hidden Dense widths; with one categorical input and no
            layers the output is that input's embedding.
        seed: initializer seed.
    """

    def __init__(self, features: list[TowerFeature], state: dict[str, Any], embedding_dim: int,
                 layers: list[int], seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.features = list(features)
        self.bare = len(features) == 1 and features[0].kind != "numeric" and not layers
        self.lookups: dict[str, tf.keras.layers.Layer] = {}
        self.embeddings: dict[str, tf.keras.layers.Layer] = {}
        self.norms: dict[str, tf.keras.layers.Layer] = {}
        for i, feature in enumerate(features):
            key = _safe(feature.name)
            if feature.kind == "numeric":
                stats = state[feature.name]
                self.norms[key] = tf.keras.layers.Normalization(
                    mean=stats["mean"], variance=stats["std"] ** 2, name=f"norm_{key}")
                continue
            vocabulary = state[feature.name]["vocabulary"]
            dim = embedding_dim if self.bare else (feature.embedding_dim or embedding_dim)
            self.lookups[key] = tf.keras.layers.StringLookup(
                vocabulary=vocabulary, mask_token=None, name=f"lookup_{key}")
            self.embeddings[key] = tf.keras.layers.Embedding(
                len(vocabulary) + 1, dim, name=f"embedding_{key}",
                embeddings_initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + i))
        self.dense = [tf.keras.layers.Dense(units, activation="relu", name=f"dense_{j}",
                                            kernel_initializer=tf.keras.initializers.GlorotUniform(seed + 100 + j))
                      for j, units in enumerate(layers)]
        self.projection = None if self.bare else tf.keras.layers.Dense(
            embedding_dim, name="projection",
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed + 200))

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        parts = []
        for feature in self.features:
            key, x = _safe(feature.name), inputs[feature.name]
            if feature.kind == "numeric":
                parts.append(self.norms[key](tf.reshape(tf.cast(x, tf.float32), [-1, 1])))
            elif feature.kind == "multi_categorical":
                tokens = tf.strings.split(x, sep=feature.separator)
                vectors = tf.ragged.map_flat_values(
                    lambda t, k=key: self.embeddings[k](self.lookups[k](t)), tokens)
                counts = tf.cast(tokens.row_lengths(), tf.float32)[:, None]
                parts.append(tf.math.divide_no_nan(tf.reduce_sum(vectors, axis=1), counts))
            else:
                parts.append(self.embeddings[key](self.lookups[key](x)))
        if self.bare:
            return parts[0]
        hidden = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        for layer in self.dense:
            hidden = layer(hidden)
        return self.projection(hidden)


def _safe(name: str) -> str:
    """A column name usable as a layer name."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


class TwoTowerModel(tfrs.models.Model):
    """Query and candidate towers with a retrieval task and an optional rating task.

    Args:
        config: the retrieval settings (loss weights, layers).
        query_tower: maps query features to embeddings.
        candidate_tower: maps candidate features to embeddings.
        candidates: dataset of candidate feature dicts (every item), used by
            the top-K accuracy metric at evaluation.
    """

    def __init__(self, config: RetrievalConfig, query_tower: Tower, candidate_tower: Tower,
                 candidates: tf.data.Dataset) -> None:
        super().__init__()
        self.config = config
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.retrieval_task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(
                candidates=candidates.batch(128).map(candidate_tower), ks=tuple(config.top_ks)),
            temperature=config.temperature)
        self.rating_model = None
        if config.rating:
            self.rating_model = tf.keras.Sequential(
                [tf.keras.layers.Dense(u, activation="relu") for u in config.rating_layers]
                + [tf.keras.layers.Dense(1)], name="rating")
            self.rating_task = tfrs.tasks.Ranking(
                loss=tf.keras.losses.MeanSquaredError(),
                metrics=[tf.keras.metrics.RootMeanSquaredError()])
        # Accidental-hit removal needs candidate ids, which would also switch the top-K metric
        # to id matching: the training loss gets a task of its own.
        self.training_task = tfrs.tasks.Retrieval(
            temperature=config.temperature, remove_accidental_hits=config.remove_accidental_hits)

    def call(self, features: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
        query = self.query_tower({k: features[k] for k in self.config.query_columns})
        candidate = self.candidate_tower({k: features[k] for k in self.config.candidate_columns})
        rating = None
        if self.rating_model is not None:
            rating = self.rating_model(tf.concat([query, candidate], axis=1))
        return query, candidate, rating

    def train_step(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        # The top-K and RMSE metrics are computed at evaluation only: log the losses alone,
        # rather than metrics that would read 0 all through training.
        return {k: v for k, v in super().train_step(inputs).items() if k.endswith("loss")}

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query, candidate, rating = self(features)
        # Top-K over every candidate is costly and does not change training: evaluation only.
        if training:
            ids = None
            if self.config.remove_accidental_hits:
                # Integer ids: comparing a batch of strings with itself costs far more than hashes.
                ids = tf.strings.to_hash_bucket_fast(features[self.config.item_id], 2**62)
            loss = self.config.retrieval_weight * self.training_task(
                query, candidate, candidate_ids=ids, compute_metrics=False)
        else:
            loss = self.config.retrieval_weight * self.retrieval_task(query, candidate)
        if rating is not None:
            loss += self.config.rating_weight * self.rating_task(
                labels=features[self.config.rating], predictions=rating, compute_metrics=not training)
        return loss


# --------------------------------------------------------------------------- training


def make_optimizer(config: RetrievalConfig) -> tf.keras.optimizers.Optimizer:
    """The configured Keras 2 optimizer."""
    if config.optimizer == "adam":
        return tf.keras.optimizers.Adam(config.learning_rate)
    return tf.keras.optimizers.Adagrad(config.learning_rate)


def interaction_arrays(frame: pd.DataFrame, config: RetrievalConfig,
                       states: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """Both towers' inputs (and the rating) of interaction rows."""
    arrays = {**tower_inputs(frame, config.query_features, states["query"]),
              **tower_inputs(frame, config.candidate_features, states["candidate"])}
    if config.rating:
        arrays[config.rating] = pd.to_numeric(frame[config.rating]).to_numpy("float32")
    return arrays


def build_model(config: RetrievalConfig, train: pd.DataFrame, items: pd.DataFrame,
                ) -> tuple[TwoTowerModel, dict[str, dict[str, Any]]]:
    """Fits the towers' vocabularies (query side on `train`, candidate side on `items`) and builds the model.

    Returns:
        The compiled model and the towers' fitted state (`{"query": ..., "candidate": ...}`).
    """
    tf.random.set_seed(config.seed)
    states = {"query": fit_tower_state(config.query_features, train),
              "candidate": fit_tower_state(config.candidate_features, items)}
    query_tower = Tower(config.query_features, states["query"], config.embedding_dim,
                        config.query_layers, seed=config.seed, name="query_tower")
    candidate_tower = Tower(config.candidate_features, states["candidate"], config.embedding_dim,
                            config.candidate_layers, seed=config.seed + 1000, name="candidate_tower")
    candidates = tf.data.Dataset.from_tensor_slices(
        tower_inputs(items, config.candidate_features, states["candidate"]))
    model = TwoTowerModel(config, query_tower, candidate_tower, candidates)
    model.compile(optimizer=make_optimizer(config))
    return model, states


def fit(model: TwoTowerModel, train: pd.DataFrame, states: dict[str, dict[str, Any]],
        verbose: int = 2) -> dict[str, list[float]]:
    """Trains on interaction rows: one fixed shuffle (seeded), batches of `batch_size`, cached.

    Returns:
        Keras history.
    """
    config = model.config
    data = tf.data.Dataset.from_tensor_slices(interaction_arrays(train, config, states))
    data = data.shuffle(len(train), seed=config.seed, reshuffle_each_iteration=False)
    data = data.batch(config.batch_size).cache()
    history = model.fit(data, epochs=config.epochs, verbose=verbose)
    return history.history


def evaluate(model: TwoTowerModel, test: pd.DataFrame, states: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Top-K accuracy (is the held-out item among the K best of all candidates) and RMSE on `test`."""
    data = tf.data.Dataset.from_tensor_slices(interaction_arrays(test, model.config, states))
    metrics = model.evaluate(data.batch(model.config.eval_batch_size), return_dict=True, verbose=0)
    out = {}
    for key, value in metrics.items():
        if key.startswith("factorized_top_k/top_"):
            out[f"top_{key.split('_')[3]}_accuracy"] = float(value)
        elif key == "root_mean_squared_error":
            out["rmse"] = float(value)
    return out

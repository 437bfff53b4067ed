"""`export_recommender`: a finished `mtrec recommend` run as one SavedModel, a user's features in, top N items out.

One graph does what `mtrec recommend` does for a user, in the same order:

1. the retrieval query tower (the two-tower run's own SavedModel, loaded
   with `tf.saved_model.load`: neither TFRS nor tf_keras is imported here)
   embeds the user; a brute-force dot product against every indexed item
   (the embeddings the TFRS BruteForce index holds) ranks the catalogue,
   the user's training items masked out, and keeps the top `output.k`;
   a user without training interactions gets the `output.k` most popular
   training items instead (`source` = "popularity"), as in `mtrec recommend`;
2. the multi-task ranker scores every candidate: the user's columns are
   repeated per candidate, the candidates' item columns come from the items
   table held in the graph, and `GraphEncoder` encodes them as the Python
   encoder does;
3. the blend of the recommend config turns the task scores into `score`,
   and the `output.n` best candidates are returned (ties keep the retrieval
   order, as `mtrec recommend`'s stable sort does).

Signature `serving_default` ({user column: [n]} ->):
    item_id            string  [n, N]  the recommended items (the item id column's name)
    <task>, ...        float32 [n, N]  every task's score (multiclass: int32 class and
                                       `<task>_proba` [n, N, classes]; chained: `<task>_conditional`)
    score              float64 [n, N]  the blended score, descending
    retrieval_score    float32 [n, N]  the two-tower score (NaN for popularity candidates)
    retrieval_rank     int32   [n, N]  the candidate's rank in retrieval (1 = best)
    source             string  [n]     "retrieval" or "popularity"

A slot beyond what the user can be offered (a catalogue smaller than k once
the user's items are removed) has item "" and score -inf.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from mtrec.errors import ConfigError, DataError
from mtrec.export.endpoints import keyword_endpoint, write_archive
from mtrec.export.graph_encoder import GraphEncoder
from mtrec.export.requests import request_columns
from mtrec.export.saved_model import VALID_NAME, blend_scores, scores_from_predictions
from mtrec.recommend.blend import Blend
from mtrec.recommend.config import RecommendConfig, load_recommend_config
from mtrec.recommend.interactions import popularity
from mtrec.retrieval.tower_inputs import as_strings as tower_strings
from mtrec.training.trained_run import TrainedRun, load_run
from mtrec.utils.validation import require_files

#: What a recommend run directory must hold to be exported.
RECOMMEND_FILES = ["config.yaml", "run.json", "ranking", "retrieval/query_tower", "retrieval/index",
                   "retrieval/towers.json", "retrieval/items.parquet", "retrieval/seen.parquet"]


@dataclasses.dataclass
class RecommenderSummary:
    """What `export_recommender` wrote."""

    out_dir: Path
    inputs: list[dict[str, Any]]
    outputs: list[str]
    items: int
    k: int
    n: int
    seconds: float


@dataclasses.dataclass
class _Parts:
    """A recommend run's pieces, loaded: config, ranker, items table in index order, retrieval state."""

    config: RecommendConfig
    run: TrainedRun
    items: pd.DataFrame
    item_ids: np.ndarray
    query_state: dict[str, Any]
    seen: pd.DataFrame
    retrieval_dir: Path

    @property
    def item_columns(self) -> list[str]:
        """The ranker's input columns that come from the items table (the item id included)."""
        user = self.config.data.user_id
        return [c for c in self.run.encoder.input_columns if c in self.items.columns and c != user]

    @property
    def user_columns(self) -> list[str]:
        """The request's columns: the query tower's, then the ranker's that are not item columns."""
        item_side = set(self.item_columns)
        columns = list(self.config.retrieval.query_columns)
        columns += [c for c in self.run.encoder.input_columns if c not in item_side and c not in columns]
        return columns


def _load(run_dir: Path, items: pd.DataFrame | str | os.PathLike | None) -> _Parts:
    from mtrec.data.io import read_table
    from mtrec.recommend.interactions import load_tables

    require_files(run_dir, RECOMMEND_FILES, "a finished `mtrec recommend` run directory",
                  "Run `mtrec recommend -c CONFIG.yaml --run-dir RUN_DIR` to the end first.")
    status = json.loads((run_dir / "run.json").read_text()).get("status")
    if status != "completed":
        raise DataError(f"{run_dir.resolve()} is not a finished `mtrec recommend` run: run.json says status "
                        f"'{status}'. Run `mtrec recommend` to the end first.")
    config = load_recommend_config(run_dir / "config.yaml")
    run = load_run(run_dir / "ranking")
    item = config.data.item_id
    if items is None:
        items = load_tables(config.data).items
    elif not isinstance(items, pd.DataFrame):
        items = read_table(items)
    if item not in items.columns:
        raise DataError(f"The items table has no column '{item}' (data.item_id). Columns: {list(items.columns)}")
    retrieval_dir = run_dir / "retrieval"
    indexed = pd.read_parquet(retrieval_dir / "items.parquet")[item]
    table = items.drop_duplicates(item).assign(_key=tower_strings(items.drop_duplicates(item)[item]))
    # The catalogue in index order, each item with its columns (missing ones for an item the table lacks).
    ordered = pd.DataFrame({"_key": tower_strings(indexed)}).merge(table, on="_key", how="left")
    ordered[item] = indexed.to_numpy()
    query_state = json.loads((retrieval_dir / "towers.json").read_text())["query"]
    seen = pd.read_parquet(retrieval_dir / "seen.parquet")
    return _Parts(config, run, ordered.drop(columns="_key"), tower_strings(indexed).to_numpy(str), query_state,
                  seen, retrieval_dir)


class _Catalogue(tf.Module):
    """The graph's constants as variables: item embeddings and columns, seen items, popularity."""

    def __init__(self, parts: _Parts, k: int) -> None:
        super().__init__(name="catalogue")
        config = parts.config
        index = tf.saved_model.load(str(parts.retrieval_dir / "index"))
        # The embeddings the TFRS index scores against, so retrieval here is the index's own arithmetic.
        self.embeddings = tf.Variable(index.model._candidates.read_value(), trainable=False, name="embeddings")
        identifiers = index.model._identifiers.numpy().astype(str)
        if not np.array_equal(identifiers, parts.item_ids):
            raise DataError(f"{parts.retrieval_dir}/items.parquet does not list the index's items in its order; "
                            "train retrieval again.")
        self.item_ids = tf.Variable(parts.item_ids.tolist(), trainable=False, name="item_ids")
        # The items' raw columns, as a request would send them (the user's columns are filled in per call).
        raw = request_columns(_with_missing(parts.items, parts.run), parts.run.encoder,
                              getattr(parts.run.config.data, "na_values", ()) or ())
        self.item_columns = {c: tf.Variable(raw[c], trainable=False, name=f"item_{c}") for c in parts.item_columns}
        self.query_tower = tf.saved_model.load(str(parts.retrieval_dir / "query_tower"))
        user, item_col = config.data.user_id, config.data.item_id
        code = {value: i for i, value in enumerate(parts.item_ids)}
        users = tower_strings(parts.seen[user]).to_numpy(str)
        items = np.array([code.get(v, -1) for v in tower_strings(parts.seen[item_col])], np.int64)
        keep = items >= 0
        known = pd.unique(users)
        row = {u: i for i, u in enumerate(known)}
        pairs = np.unique(np.stack([np.array([row[u] for u in users[keep]], np.int64), items[keep]], 1), axis=0)
        self.user_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(known.tolist(), tf.string),
                                                tf.range(len(known), dtype=tf.int64)),
            default_value=-1, name="known_users")
        # Row i of the seen items is user i's training items; one more empty row for users without any.
        splits = np.searchsorted(pairs[:, 0], np.arange(len(known) + 2)) if len(pairs) else np.zeros(
            len(known) + 2, np.int64)
        self.seen_splits = tf.Variable(splits.astype(np.int64), trainable=False, name="seen_splits")
        self.seen_items = tf.Variable(pairs[:, 1] if len(pairs) else np.zeros(0, np.int64), trainable=False,
                                      name="seen_items")
        popular = popularity(parts.seen, item_col, k)[item_col]
        popular = np.array([code.get(v, -1) for v in tower_strings(popular)], np.int64)
        self.popular = tf.Variable(popular, trainable=False, name="popular")


def export_recommender(run_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       items: pd.DataFrame | str | os.PathLike | None = None,
                       overwrite: bool = False) -> RecommenderSummary:
    """Writes a finished recommend run as one SavedModel: a user's columns in, the top N items with scores out.

    Args:
        run_dir: a `mtrec recommend` run directory (finished).
        out_dir: the SavedModel folder to write (atomically).
        items: the items table (a DataFrame or a Parquet/CSV path) whose
            columns the ranker reads. Defaults to the run config's
            `data` (the data set, or `data.items`).
        overwrite: bool. Replace an existing `out_dir`. Defaults to `False`.

    Returns:
        A `RecommenderSummary`.

    Raises:
        DataError: the run is not finished (what is missing is named), or
            `out_dir` exists without `overwrite`.
        ConfigError: a column is numeric for one model and text for the
            other, or a column name TensorFlow refuses as an input name.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ConfigError(f"mtrec export needs Keras' TensorFlow backend; this process runs "
                          f"'{keras.backend.backend()}'. Run `KERAS_BACKEND=tensorflow mtrec export ...`.")
    started = time.perf_counter()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise DataError(f"Export folder {out_dir} already exists; choose another or pass --overwrite.")
    parts = _load(run_dir, items)
    config, run = parts.config, parts.run
    encoder = GraphEncoder(run.encoder, na_values=getattr(run.config.data, "na_values", ()) or ())
    k = min(config.output.k, len(parts.item_ids))
    n = min(config.output.n, k)
    catalogue = _Catalogue(parts, k)
    specs = _user_specs(parts, encoder)
    towers = {f.name: f for f in config.retrieval.query_features}
    query_mean = {name: float(parts.query_state[name]["mean"]) for name, f in towers.items() if f.kind == "numeric"}
    blend = Blend(config.blend)
    item_columns = parts.item_columns
    num_items = len(parts.item_ids)

    def recommend(columns: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        users = tf.shape(columns[specs_first])[0]
        # 1. Retrieval: the query tower, every item scored, the user's training items masked out.
        query = {}
        for name, feature in towers.items():
            value = columns[name]
            if feature.kind == "numeric":  # tower_inputs: float32, NaN -> the training mean
                value = tf.cast(value, tf.float32)
                value = tf.where(tf.math.is_nan(value), tf.constant(query_mean[name], tf.float32), value)
            query[name] = value
        embedding = catalogue.query_tower.signatures["serving_default"](**query)["embedding"]
        scores = tf.matmul(embedding, catalogue.embeddings, transpose_b=True)
        code = catalogue.user_table.lookup(columns[config.data.user_id])
        known = code >= 0
        row = tf.where(known, code, tf.cast(tf.shape(catalogue.seen_splits)[0] - 2, tf.int64))
        seen = tf.RaggedTensor.from_row_splits(catalogue.seen_items, catalogue.seen_splits)
        seen = tf.gather(seen, row)
        where_seen = tf.stack([seen.value_rowids(), seen.flat_values], axis=1)
        mask = tf.scatter_nd(where_seen, tf.ones_like(seen.flat_values, tf.int32),
                             tf.cast(tf.stack([users, num_items]), tf.int64)) > 0
        scores = tf.where(mask, tf.constant(-np.inf, tf.float32), scores)
        retrieved_score, retrieved = tf.math.top_k(scores, k=k)
        valid_retrieved = retrieved_score > -np.inf
        popular = tf.pad(catalogue.popular, [[0, k - tf.shape(catalogue.popular)[0]]], constant_values=-1)
        candidate = tf.where(known[:, None], tf.cast(retrieved, tf.int64), popular[None, :])
        valid = tf.where(known[:, None], valid_retrieved, (popular >= 0)[None, :])
        retrieval_score = tf.where(known[:, None], retrieved_score, tf.constant(np.nan, tf.float32))
        # 2. Ranking: each candidate a row, the user's columns repeated, the item's taken from the catalogue.
        flat = tf.reshape(tf.maximum(candidate, 0), [-1])
        rows = {c: tf.repeat(columns[c], k, axis=0) for c in run_columns if c not in item_columns}
        rows.update({c: tf.gather(catalogue.item_columns[c], flat) for c in item_columns})
        out = scores_from_predictions(run, run.model(encoder(rows), training=False))
        out["score"] = blend_scores(blend, out)
        out = {name: tf.reshape(value, tf.concat([[users, k], tf.shape(value)[1:]], 0)) for name, value in out.items()}
        # 3. The blend's top n (top_k keeps the lower index, the retrieval order, on ties).
        ranked = tf.where(valid, out["score"], tf.constant(-np.inf, tf.float64))
        _, best = tf.math.top_k(ranked, k=n)
        result = {config.data.item_id: tf.where(tf.gather(valid, best, batch_dims=1),
                                                tf.gather(catalogue.item_ids, tf.gather(candidate, best, batch_dims=1)),
                                                "")}
        for name, value in out.items():
            result[name] = tf.gather(value, best, batch_dims=1)
        result["score"] = tf.gather(ranked, best, batch_dims=1)
        result["retrieval_score"] = tf.gather(retrieval_score, best, batch_dims=1)
        result["retrieval_rank"] = tf.cast(best, tf.int32) + 1
        result["source"] = tf.where(known, "retrieval", "popularity")
        return result

    run_columns = list(run.encoder.input_columns)
    specs_first = next(iter(specs))
    archive = keras.export.ExportArchive()
    archive.track(run.model)
    archive.track(encoder)
    archive.track(catalogue)
    function, signature = keyword_endpoint(recommend, specs)
    endpoint = archive.add_endpoint("serving_default", function, input_signature=signature)
    outputs = list(endpoint.get_concrete_function().structured_outputs)
    manifest = {"format": "mtrec.export.recommender", "version": 1, "run_dir": str(run_dir),
                "model": type(run.model).__name__, "signatures": ["serving_default"],
                "inputs": _describe(parts, encoder, specs), "outputs": outputs, "items": num_items,
                "k": k, "n": n, "blend": dataclasses.asdict(config.blend)}
    write_archive(archive, out_dir, manifest)
    return RecommenderSummary(out_dir, manifest["inputs"], outputs, num_items, k, n,
                              time.perf_counter() - started)


def _user_specs(parts: _Parts, encoder: GraphEncoder) -> dict[str, tf.TensorSpec]:
    """The request's inputs: the ranker's dtype where it reads the column, else the tower's."""
    ranker = encoder.input_signature()
    towers = {f.name: f.kind for f in parts.config.retrieval.query_features}
    specs = {}
    for column in parts.user_columns:
        tower_dtype = None if column not in towers else (tf.float64 if towers[column] == "numeric" else tf.string)
        dtype = ranker[column].dtype if column in ranker else tower_dtype
        if tower_dtype is not None and (dtype == tf.string) != (tower_dtype == tf.string):
            raise ConfigError(
                f"Column '{column}' is {'text' if dtype == tf.string else 'numeric'} for the ranker but "
                f"{towers[column]} for the retrieval query tower; one request column cannot be both.")
        if column not in ranker and not VALID_NAME.match(column):
            raise ConfigError(f"Query tower column '{column}' cannot be a SavedModel input name (TensorFlow "
                              f"accepts {VALID_NAME.pattern}).")
        specs[column] = ranker[column] if column in ranker else tf.TensorSpec([None], dtype, name=column)
    return specs


def _describe(parts: _Parts, encoder: GraphEncoder, specs: dict[str, tf.TensorSpec]) -> list[dict[str, Any]]:
    ranker = {entry["name"]: entry for entry in encoder.describe_inputs()}
    out = []
    for column, spec in specs.items():
        entry = ranker.get(column, {"name": column, "dtype": "float64" if spec.dtype == tf.float64 else "string",
                                    "kind": "query tower only", "missing": "NaN" if spec.dtype == tf.float64 else ""})
        out.append({**entry, "missing": list(entry["missing"]) if isinstance(entry["missing"], list)
                    else entry["missing"], "input_name": spec.name})
    return out


def _with_missing(frame: pd.DataFrame, run: TrainedRun) -> pd.DataFrame:
    """`frame` with every ranker column it lacks added as missing values (NaN for numeric ones)."""
    numeric = {state.column for state in run.encoder.numeric_}
    return frame.assign(**{c: (np.nan if c in numeric else None) for c in run.encoder.input_columns
                           if c not in frame.columns})


def recommender_request(users: pd.DataFrame, run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Users' rows as the exported recommender's inputs (tests, benchmarks, clients with pandas).

    Args:
        users: one row per user with the request columns (the user table's columns).
        run_dir: the recommend run directory.

    Returns:
        `{column: numpy array}`: float64 with NaN for numeric columns, strings ("" missing) otherwise.
    """
    run_dir = Path(run_dir)
    config = load_recommend_config(run_dir / "config.yaml")
    run = load_run(run_dir / "ranking")
    out = {k: v for k, v in request_columns(_with_missing(users, run), run.encoder).items() if k in users.columns}
    for feature in config.retrieval.query_features:
        if feature.name in out:
            continue
        values = users[feature.name]
        out[feature.name] = (pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)
                             if feature.kind == "numeric" else tower_strings(values).to_numpy(str))
    return out

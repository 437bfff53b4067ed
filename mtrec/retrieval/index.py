"""Querying a saved retrieval index: users in, top-K candidates per user out.

The index is a SavedModel (a TFRS BruteForce layer with the query tower in
front), loaded with `tf.saved_model.load`: plain TensorFlow, no TFRS and no
Keras 2, so this module is safe in the Keras 3 process.

Example:

```python
index = CandidateIndex.load("runs/recommend/retrieval")
candidates = index.query(pd.DataFrame({"user_id": [1, 2]}), k=100)
# user_id, rank (1 = best), item_id, retrieval_score
```
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mtrec.errors import DataError, SchemaError
from mtrec.retrieval.config import RetrievalConfig, parse_retrieval_config
from mtrec.utils.validation import closest

INDEX_DIR = "index"


def _strings(values: pd.Series) -> pd.Series:
    # The same conversion as the towers' (mtrec.retrieval.two_tower.as_strings), kept free of TF.
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        values = values.astype("Int64")
    return values.astype("string").fillna("").astype(str)


@dataclasses.dataclass
class CandidateIndex:
    """A loaded retrieval directory: the index, its config, the users' features and what each user has seen.

    Attributes:
        directory: the retrieval directory.
        config: its retrieval settings.
        users: each training user's query features (fills in features a
            query table lacks).
        seen: `{user id string: set of item id strings}` from training, for
            excluding already-seen items.
    """

    directory: Path
    config: RetrievalConfig
    users: pd.DataFrame
    seen: dict[str, set[str]]
    numeric_means: dict[str, float] = dataclasses.field(default_factory=dict)
    integer_items: bool = False
    _serve: Any = dataclasses.field(repr=False, default=None)

    @classmethod
    def load(cls, directory: str | Path) -> "CandidateIndex":
        """Loads a retrieval directory written by `mtrec retrieval-train`.

        Raises:
            DataError: the directory or one of its parts is missing.
        """
        directory = Path(directory)
        if (directory / "retrieval").is_dir() and not (directory / INDEX_DIR).is_dir():
            directory = directory / "retrieval"  # a recommend run directory
        needed = [INDEX_DIR, "retrieval.json", "towers.json", "users.parquet", "seen.parquet"]
        missing = [name for name in needed if not (directory / name).exists()]
        if missing:
            raise DataError(
                f"{directory.resolve()} is not a trained retrieval directory: missing {missing}. "
                "Train one with `mtrec retrieval-train -c CONFIG.yaml --run-dir RUN_DIR`.")
        import tensorflow as tf

        config = parse_retrieval_config(json.loads((directory / "retrieval.json").read_text()))
        users = pd.read_parquet(directory / "users.parquet")
        seen_frame = pd.read_parquet(directory / "seen.parquet")
        seen: dict[str, set[str]] = {}
        for user, item in zip(_strings(seen_frame[config.user_id]), _strings(seen_frame[config.item_id])):
            seen.setdefault(user, set()).add(item)
        states = json.loads((directory / "towers.json").read_text())["query"]
        means = {f.name: float(states[f.name]["mean"]) for f in config.query_features if f.kind == "numeric"}
        integer_items = pd.api.types.is_integer_dtype(seen_frame[config.item_id])
        serve = tf.saved_model.load(str(directory / INDEX_DIR)).signatures["serving_default"]
        return cls(directory, config, users, seen, means, integer_items, serve)

    def _query_inputs(self, users: pd.DataFrame, source: str) -> pd.DataFrame:
        """The query features of `users`, filled in from the training users' table."""
        config = self.config
        if config.user_id not in users.columns:
            raise SchemaError(f"Column '{config.user_id}' (the user id) is missing from {source}."
                              f"{closest(config.user_id, users.columns)} Columns present: {list(users.columns)}")
        frame = users[[c for c in config.query_columns if c in users.columns]].copy()
        lacking = [c for c in config.query_columns if c not in frame.columns]
        if lacking:
            known = self.users.assign(_key=_strings(self.users[config.user_id]))[["_key", *lacking]]
            frame = frame.assign(_key=_strings(frame[config.user_id])).merge(known, on="_key", how="left")
        return frame

    def query(self, users: pd.DataFrame, k: int | None = None, exclude_seen: bool = True,
              batch_size: int = 1024, progress: bool = False, source: str = "the users table") -> pd.DataFrame:
        """Top-k candidates per user.

        Args:
            users: one row per user: the user id, and optionally query
                features (missing ones come from the training users' table;
                an unknown user gets the out-of-vocabulary embedding).
            k: candidates per user; defaults to the config's `k`.
            exclude_seen: drop items the user interacted with in training.
            batch_size: users per index call.
            progress: show a progress bar over users.
            source: description of `users`, for messages.

        Returns:
            Columns: the user id, `rank` (1 = best), the item id (as in the
            training items table when the ids were integers) and
            `retrieval_score`; k rows per user (fewer only when the catalogue
            is smaller).
        """
        import tensorflow as tf

        config = self.config
        k = int(k or config.k)
        frame = self._query_inputs(users.drop_duplicates(config.user_id), source)
        keys = _strings(frame[config.user_id]).to_numpy(dtype=object)
        parts = []
        with tqdm(total=len(frame), unit="users", desc="retrieval", disable=not progress) as bar:
            for start in range(0, len(frame), batch_size):
                chunk = frame.iloc[start:start + batch_size]
                chunk_keys = keys[start:start + batch_size]
                extra = max((len(self.seen.get(u, ())) for u in chunk_keys), default=0) if exclude_seen else 0
                inputs = {}
                for feature in config.query_features:
                    column = chunk[feature.name]
                    if feature.kind == "numeric":
                        numbers = pd.to_numeric(column, errors="coerce").fillna(self.numeric_means[feature.name])
                        inputs[feature.name] = tf.constant(numbers.to_numpy("float32"))
                    else:
                        inputs[feature.name] = tf.constant(_strings(column).to_numpy(dtype=object).astype(bytes))
                result = self._serve(**inputs, k=tf.constant(k + extra, tf.int32))
                ids = result["ids"].numpy().astype(str)
                scores = result["scores"].numpy()
                n = ids.shape[1]
                part = pd.DataFrame({"_key": np.repeat(chunk_keys, n), "item": ids.ravel(),
                                     "retrieval_score": scores.ravel()})
                if exclude_seen:
                    seen = np.fromiter((item in self.seen.get(user, ()) for user, item in
                                        zip(part["_key"], part["item"])), bool, len(part))
                    part = part[~seen]
                parts.append(part.groupby("_key", sort=False).head(k))
                bar.update(len(chunk))
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            {"_key": [], "item": [], "retrieval_score": []})
        out["rank"] = out.groupby("_key", sort=False).cumcount() + 1
        users_by_key = dict(zip(keys, frame[config.user_id].to_numpy()))
        result = pd.DataFrame({
            config.user_id: out["_key"].map(users_by_key).to_numpy(),
            "rank": out["rank"].to_numpy("int32"),
            config.item_id: self._item_ids(out["item"]),
            "retrieval_score": out["retrieval_score"].to_numpy("float32"),
        })
        return result

    def _item_ids(self, items: pd.Series) -> np.ndarray:
        """Item ids back in their training dtype (integers stay integers)."""
        if self.integer_items:
            return items.astype("int64").to_numpy()
        return items.to_numpy(dtype=object)

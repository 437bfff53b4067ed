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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mtrec.retrieval.config import RetrievalConfig, parse_retrieval_config
from mtrec.retrieval.tower_inputs import as_strings, tower_inputs
from mtrec.utils.config_file import read_config_file
from mtrec.utils.validation import require_columns, require_files

INDEX_DIR = "index"


@dataclasses.dataclass
class CandidateIndex:
    """A loaded retrieval directory: the index, its config, the users' features and what each user has seen.

    Attributes:
        directory: the retrieval directory.
        config: its retrieval settings.
        users: each training user's query features (fills in features a
            query table lacks).
        items: the indexed item ids, in the training items table's dtype.
        seen_count: `{user id string: number of training items}`.
        query_state: the query tower's fitted state (`towers.json`), for its inputs.
    """

    directory: Path
    config: RetrievalConfig
    users: pd.DataFrame
    items: np.ndarray
    seen_count: dict[str, int]
    query_state: dict[str, Any] = dataclasses.field(default_factory=dict)
    _item_code: dict[bytes, int] = dataclasses.field(repr=False, default_factory=dict)
    _user_code: dict[str, int] = dataclasses.field(repr=False, default_factory=dict)
    _seen_pairs: np.ndarray = dataclasses.field(repr=False, default=None)
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
        require_files(directory, [INDEX_DIR, "retrieval.json", "towers.json", "users.parquet", "items.parquet",
                                  "seen.parquet"], "a trained retrieval directory",
                      "Train one with `mtrec retrieval-train -c CONFIG.yaml --run-dir RUN_DIR`.")
        import tensorflow as tf

        config = parse_retrieval_config(read_config_file(directory / "retrieval.json"))
        users = pd.read_parquet(directory / "users.parquet")
        items = pd.read_parquet(directory / "items.parquet")[config.item_id]
        item_code = {value.encode("utf-8"): i for i, value in enumerate(as_strings(items))}
        # Training pairs as one int64 per (user, item), for a vectorized "seen" test.
        seen = pd.read_parquet(directory / "seen.parquet")
        seen_users = as_strings(seen[config.user_id])
        user_code = {user: i for i, user in enumerate(pd.unique(seen_users))}
        seen_items = np.array([item_code.get(v.encode("utf-8"), -1) for v in as_strings(seen[config.item_id])])
        pairs = seen_pair_codes(seen_users.map(user_code).to_numpy("int64"), seen_items, len(items))
        seen_count = seen_users.value_counts().to_dict()
        query_state = read_config_file(directory / "towers.json")["query"]
        serve = tf.saved_model.load(str(directory / INDEX_DIR)).signatures["serving_default"]
        return cls(directory, config, users, items.to_numpy(), seen_count, query_state, item_code, user_code,
                   pairs, serve)

    def _query_inputs(self, users: pd.DataFrame, source: str) -> pd.DataFrame:
        """The query features of `users`, filled in from the training users' table."""
        config = self.config
        require_columns(users, [config.user_id], source, note=" (the user id)")
        frame = users[[c for c in config.query_columns if c in users.columns]].copy()
        lacking = [c for c in config.query_columns if c not in frame.columns]
        if lacking:
            known = self.users.assign(_key=as_strings(self.users[config.user_id]))[["_key", *lacking]]
            frame = frame.assign(_key=as_strings(frame[config.user_id])).merge(known, on="_key", how="left")
        return frame

    def query(self, users: pd.DataFrame, k: int | None = None, exclude_seen: bool = True,
              batch_size: int = 256, progress: bool = False, source: str = "the users table") -> pd.DataFrame:
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
            Columns: the user id, `rank` (1 = best), the item id (in the
            training items table's dtype) and `retrieval_score`; k rows per
            user (fewer only when the catalogue is smaller), users in input order.
        """
        import tensorflow as tf

        config = self.config
        k = int(k or config.k)
        frame = self._query_inputs(users, source).drop_duplicates(config.user_id).reset_index(drop=True)
        keys = as_strings(frame[config.user_id])
        codes = keys.map(self._user_code).fillna(-1).to_numpy("int64")
        seen = keys.map(self.seen_count).fillna(0).to_numpy("int64") if exclude_seen else np.zeros(len(keys), int)
        # Users with few seen items together, so a batch asks the index for few extra results.
        order = np.argsort(seen, kind="stable")
        parts = []
        with tqdm(total=len(frame), unit="users", desc="retrieval", disable=not progress) as bar:
            for start in range(0, len(frame), batch_size):
                rows = order[start:start + batch_size]
                chunk = frame.iloc[rows]
                inputs = {name: tf.constant(values) for name, values in
                          tower_inputs(chunk, config.query_features, self.query_state).items()}
                result = self._serve(**inputs, k=tf.constant(k + int(seen[rows].max()), tf.int32))
                ids = result["ids"].numpy()
                n = ids.shape[1]
                item = pd.Series(ids.ravel()).map(self._item_code).to_numpy("int64")
                part = pd.DataFrame({"_row": np.repeat(rows, n), "_item": item,
                                     "retrieval_score": result["scores"].numpy().ravel()})
                if exclude_seen:
                    pairs = np.repeat(codes[rows], n) * len(self.items) + item
                    part = part[~_contains(self._seen_pairs, pairs)]
                parts.append(part.groupby("_row", sort=False).head(k))
                bar.update(len(rows))
        out = pd.concat(parts, ignore_index=True).sort_values("_row", kind="stable")
        return pd.DataFrame({
            config.user_id: frame[config.user_id].to_numpy()[out["_row"].to_numpy()],
            "rank": (out.groupby("_row", sort=False).cumcount() + 1).to_numpy("int32"),
            config.item_id: self.items[out["_item"].to_numpy()],
            "retrieval_score": out["retrieval_score"].to_numpy("float32"),
        })


def seen_pair_codes(user_codes: np.ndarray, item_codes: np.ndarray, num_items: int) -> np.ndarray:
    """The seen (user, item) pairs as sorted unique int64 codes `user * num_items + item`.

    Items missing from the catalogue (code -1) are dropped: they are never
    retrieved, and `user * num_items - 1` would name the previous user's last item.
    """
    known = item_codes >= 0
    return np.unique(user_codes[known] * num_items + item_codes[known])


def _contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each of `values` is in the sorted array `sorted_values` (a binary search each)."""
    if len(sorted_values) == 0:
        return np.zeros(len(values), bool)
    position = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[position] == values

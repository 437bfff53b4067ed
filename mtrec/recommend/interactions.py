"""The recommendation data: interactions, the user and item tables, and the held-out interactions.

`load_tables` reads the configured data set (or files); `holdout_split` keeps
each user's latest interactions (or a random share) for the offline
evaluation; `with_features` joins user and item features onto any
(user, item) rows, which is how retrieval candidates and sampled negatives
get their features.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from mtrec.data.io import read_table
from mtrec.errors import DataError
from mtrec.recommend.config import HoldoutConfig, RecommendDataConfig
from mtrec.utils.validation import require_columns


@dataclasses.dataclass
class Tables:
    """Interactions (one row per user-item event, with a rating and a like label), users and items."""

    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame


def load_tables(config: RecommendDataConfig) -> Tables:
    """Reads interactions, users and items as configured and checks their key columns.

    Raises:
        DataError / SchemaError: a missing file or column, naming it.
    """
    if config.dataset == "movielens_100k":
        from mtrec.data.datasets.movielens import load_movielens, load_movielens_items, load_movielens_users

        tables = Tables(load_movielens(config.data_dir), load_movielens_users(config.data_dir),
                        load_movielens_items(config.data_dir))
        sources = ("MovieLens 100K ratings", "u.user", "u.item")
    else:
        tables = Tables(read_table(config.interactions), read_table(config.users), read_table(config.items))
        sources = (config.interactions, config.users, config.items)
    return check_tables(tables, config, sources)


def check_tables(tables: Tables, config: RecommendDataConfig,
                 sources: tuple[str, str, str] = ("the interactions", "the users table", "the items table")) -> Tables:
    """Checks the id, rating and like columns; derives `like` from the rating when absent.

    Raises:
        SchemaError: a key column is missing; DataError: a table is empty,
            or an interaction names a user or item absent from its table.
    """
    interactions, users, items = tables.interactions, tables.users, tables.items
    for frame, source in zip((interactions, users, items), sources):
        if frame.empty:
            raise DataError(f"{source} has no rows.")
    require_columns(interactions, [config.user_id, config.item_id, config.rating], str(sources[0]))
    require_columns(users, [config.user_id], str(sources[1]))
    require_columns(items, [config.item_id], str(sources[2]))
    if config.like not in interactions.columns:
        interactions = interactions.assign(
            **{config.like: (interactions[config.rating] >= config.like_threshold).astype("int64")})
    unknown = ~interactions[config.item_id].isin(items[config.item_id])
    if unknown.any():
        raise DataError(f"{int(unknown.sum())} interactions of {sources[0]} name items absent from {sources[2]}, "
                        f"e.g. {config.item_id} = {interactions.loc[unknown, config.item_id].iloc[0]!r}.")
    return Tables(interactions.reset_index(drop=True), users.drop_duplicates(config.user_id).reset_index(drop=True),
                  items.drop_duplicates(config.item_id).reset_index(drop=True))


def holdout_split(interactions: pd.DataFrame, config: HoldoutConfig, user_id: str = "user_id",
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits interactions into (train, held out).

    `user_time`: per user, the latest `ceil(fraction * n)` interactions are
    held out (none when the user has a single one), ties in time broken by a
    seeded shuffle. `random`: a seeded random `fraction` of all rows.

    Raises:
        SchemaError: the time column is missing.
    """
    rng = np.random.default_rng(config.seed)
    if config.kind == "random":
        held = rng.random(len(interactions)) < config.fraction
    else:
        require_columns(interactions, [config.time_column], "the interactions (data.holdout.time_column)")
        order = interactions.assign(_tie=rng.random(len(interactions)))
        order = order.sort_values([user_id, config.time_column, "_tie"], kind="stable")
        position = order.groupby(user_id, sort=False).cumcount().to_numpy()
        count = order.groupby(user_id, sort=False)[user_id].transform("size").to_numpy()
        keep = count - np.where(count > 1, np.ceil(count * config.fraction - 1e-9).astype(int), 0)
        held_sorted = position >= keep
        held = np.zeros(len(interactions), bool)
        held[interactions.index.get_indexer(order.index)] = held_sorted
    return interactions[~held].reset_index(drop=True), interactions[held].reset_index(drop=True)


def with_features(rows: pd.DataFrame, tables: Tables, user_id: str, item_id: str) -> pd.DataFrame:
    """`rows` (with user and item ids) with every user-table and item-table column joined on.

    Columns already in `rows` are kept as they are; rows of unknown users
    or items get missing features (the encoders impute them).
    """
    user_cols = [c for c in tables.users.columns if c != user_id and c not in rows.columns]
    out = rows.merge(tables.users[[user_id, *user_cols]], on=user_id, how="left", validate="m:1")
    item_cols = [c for c in tables.items.columns if c != item_id and c not in out.columns]
    return out.merge(tables.items[[item_id, *item_cols]], on=item_id, how="left", validate="m:1")


def popularity(train: pd.DataFrame, item_id: str, k: int) -> pd.DataFrame:
    """The k items with the most training interactions (ties: smaller id first), with their counts."""
    counts = train.groupby(item_id).size().rename("count").reset_index()
    counts = counts.sort_values(["count", item_id], ascending=[False, True], kind="stable")
    return counts.head(k).reset_index(drop=True)


__all__ = ["Tables", "load_tables", "check_tables", "holdout_split", "with_features", "popularity"]

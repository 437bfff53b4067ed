"""MovieLens 100K: 100,000 ratings of 1,682 movies by 943 users (GroupLens, research use only).

Raw files in `<data_dir>/movielens_100k/`: `u.data.gz` (or `u.data`; tab-separated
user_id, item_id, rating, timestamp), `u.item` (`|`-separated, latin-1: id, title,
release date, video release date, IMDb URL, 19 genre flags in `GENRES` order) and
`u.user` (`|`-separated: id, age, gender, occupation, zip code).

`load_movielens` returns one row per rating with the user's and the movie's side
features joined on; `load_movielens_users` and `load_movielens_items` return the side
tables themselves (one row per user / movie), e.g. for a retrieval model's candidate
tower.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mtrec.data.datasets.common import (
    Batch,
    check_loader_args,
    dataset_folder,
    find_raw_file,
    read_csv,
    read_raw,
)
from mtrec.errors import DataError

FOLDER = "movielens_100k"
RATINGS_FILES = ("u.data.gz", "u.data")
ITEMS_FILES = ("u.item",)
USERS_FILES = ("u.user",)

#: The 19 genre flags of u.item, in order (u.genre).
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]
#: Separator of the genres in the `genres` column (the multi_categorical default).
GENRE_SEPARATOR = "|"

_RATING_FIELDS = ["user_id", "item_id", "rating", "timestamp"]
_ITEM_FIELDS = ["item_id", "title", "release_date", "video_release_date", "imdb_url"] + [
    f"genre_{i}" for i in range(len(GENRES))]
_USER_FIELDS = ["user_id", "age", "gender", "occupation", "zip_code"]

ZIP_PREFIX_LENGTH = 3
_DAYS = np.array(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], dtype=object)
_SECONDS_PER_YEAR = 365.25 * 24 * 3600

#: Columns of `load_movielens`: ids, labels, time, then features.
ID_COLUMNS = ["user_id", "item_id"]
LABEL_COLUMNS = ["rating", "like"]
TIME_COLUMN = "timestamp"
USER_FEATURES = ["age", "gender", "occupation", "zip_prefix"]
ITEM_FEATURES = ["genres", "release_year"]
TIME_FEATURES = ["hour", "day_of_week", "movie_age"]


# --------------------------------------------------------------------------- side tables


def _convert_users(batch: Batch) -> pd.DataFrame:
    zip_code = batch.string("zip_code", required=True)
    return pd.DataFrame({
        "user_id": batch.number("user_id", integer=True, low=1),
        "age": batch.number("age", integer=True, low=0, high=120),
        "gender": batch.string("gender", required=True),
        "occupation": batch.string("occupation", required=True),
        "zip_code": zip_code,
        # The first digits locate a US area; Canadian codes (letters) keep their first letters.
        "zip_prefix": zip_code.str.slice(0, ZIP_PREFIX_LENGTH),
    })


def _convert_items(batch: Batch) -> pd.DataFrame:
    flags = np.column_stack([batch.number(f"genre_{i}", integer=True, low=0, high=1).to_numpy()
                             for i in range(len(GENRES))]).astype(bool)
    names = np.array(GENRES, dtype=object)
    genres = [GENRE_SEPARATOR.join(names[row]) for row in flags]
    release = batch.string("release_date")
    date = pd.to_datetime(release, format="%d-%b-%Y", errors="coerce")
    batch.reject(date.isna().to_numpy() & release.notna().to_numpy(),
                 lambda i: f"column 'release_date' = {release.iloc[i]!r} is not a date like 01-Jan-1995")
    return pd.DataFrame({
        "item_id": batch.number("item_id", integer=True, low=1),
        "title": batch.string("title", required=True),
        "release_date": date,
        "release_year": date.dt.year.astype("float64"),
        "genres": pd.Series(genres, index=batch.index, dtype="str"),
    })


def _side_table(data_dir: str | os.PathLike | None, names: tuple[str, ...], fields: list[str],
                convert, max_malformed_fraction: float) -> pd.DataFrame:
    path, table = read_raw(data_dir, FOLDER, names, columns=fields, convert=convert, header=False,
                           delimiter="|", encoding="latin-1", quoting=False,
                           max_malformed_fraction=max_malformed_fraction)
    key = fields[0]
    duplicated = table[key].duplicated()
    if duplicated.any():
        raise DataError(f"{path.resolve()} lists {key} {table.loc[duplicated, key].iloc[0]} more than once.")
    return table.sort_values(key, ignore_index=True)


def load_movielens_users(data_dir: str | os.PathLike | None = None, *,
                         max_malformed_fraction: float = 0.001) -> pd.DataFrame:
    """The user table of MovieLens 100K (u.user), one row per user.

    Args:
        data_dir: the folder holding `movielens_100k/`. Defaults to `default_data_dir()`.
        max_malformed_fraction: skip malformed rows up to this fraction, else fail.

    Returns:
        `user_id` (int64), `age` (int64), `gender`, `occupation`, `zip_code`,
        `zip_prefix` (its first 3 characters) as strings; sorted by `user_id`.

    Raises:
        DataError: the folder or u.user is missing or unreadable, a user id
            repeats, or too many rows are malformed.
    """
    return _side_table(data_dir, USERS_FILES, _USER_FIELDS, _convert_users, max_malformed_fraction)


def load_movielens_items(data_dir: str | os.PathLike | None = None, *,
                         max_malformed_fraction: float = 0.001) -> pd.DataFrame:
    """The movie table of MovieLens 100K (u.item), one row per movie.

    Args:
        data_dir: the folder holding `movielens_100k/`. Defaults to `default_data_dir()`.
        max_malformed_fraction: skip malformed rows up to this fraction, else fail.

    Returns:
        `item_id` (int64), `title`, `release_date` (datetime, NaT when unknown),
        `release_year` (float64, NaN when unknown), `genres` (the movie's genres
        in `GENRES` order joined by `"|"`); sorted by `item_id`.

    Raises:
        DataError: the folder or u.item is missing or unreadable, an item id
            repeats, or too many rows are malformed.
    """
    return _side_table(data_dir, ITEMS_FILES, _ITEM_FIELDS, _convert_items, max_malformed_fraction)


# --------------------------------------------------------------------------- ratings


def load_movielens(data_dir: str | os.PathLike | None = None, *, nrows: int | None = None,
                   max_malformed_fraction: float = 0.001) -> pd.DataFrame:
    """Loads MovieLens 100K ratings with user, movie and time features joined on.

    Args:
        data_dir: the folder holding `movielens_100k/`. Defaults to `default_data_dir()`.
        nrows: read at most this many ratings (in file order). Defaults to all.
        max_malformed_fraction: malformed ratings (wrong field count, a value that
            is not a whole number, a rating outside 1..5, an unknown user or
            movie id) are skipped with a warning; more than this fraction fails.
            Defaults to `0.001`.

    Returns:
        One row per rating, in file order:
        - ids `user_id`, `item_id` (int64; declare them `categorical` for
          embeddings) and time `timestamp` (int64 unix seconds);
        - labels `rating` (float64, 1..5) and `like` (int64, rating >= 4);
        - user features `age` (int64), `gender`, `occupation`, `zip_prefix`;
        - movie features `genres` (`"|"`-joined, a `multi_categorical` feature)
          and `release_year` (float64, NaN for the one undated movie);
        - time features `hour` (int64, UTC), `day_of_week` ("Mon".."Sun", UTC)
          and `movie_age` (float64 years from release to rating, NaN when the
          release date is unknown).

    Raises:
        DataError: the folder or a raw file is missing (the message names both),
            unreadable, or too many rows are malformed.

    Example:

    ```python
    ratings = load_movielens()
    ratings["like"].mean()                      # about 0.55
    ```
    """
    nrows, max_malformed_fraction = check_loader_args(nrows, max_malformed_fraction)
    path = find_raw_file(dataset_folder(data_dir, FOLDER), RATINGS_FILES)
    users = load_movielens_users(data_dir, max_malformed_fraction=max_malformed_fraction)
    items = load_movielens_items(data_dir, max_malformed_fraction=max_malformed_fraction)

    def convert(batch: Batch) -> pd.DataFrame:
        user_id = batch.number("user_id", integer=True)
        item_id = batch.number("item_id", integer=True)
        batch.reject(~user_id.isin(users["user_id"]).to_numpy(),
                     lambda i: f"user_id {user_id.iloc[i]} is not in u.user")
        batch.reject(~item_id.isin(items["item_id"]).to_numpy(),
                     lambda i: f"item_id {item_id.iloc[i]} is not in u.item")
        return pd.DataFrame({
            "user_id": user_id,
            "item_id": item_id,
            "rating": batch.number("rating", integer=True, low=1, high=5).astype("float64"),
            "timestamp": batch.number("timestamp", integer=True, low=0),
        })

    ratings = read_csv(path, columns=_RATING_FIELDS, convert=convert, header=False, delimiter="\t",
                       quoting=False, nrows=nrows, max_malformed_fraction=max_malformed_fraction)
    ratings["like"] = (ratings["rating"] >= 4).astype("int64")
    frame = ratings.merge(users[["user_id"] + USER_FEATURES], on="user_id", how="left", validate="m:1")
    frame = frame.merge(items[["item_id", "release_date"] + ITEM_FEATURES], on="item_id", how="left",
                        validate="m:1")
    when = pd.to_datetime(frame["timestamp"], unit="s")
    frame["hour"] = when.dt.hour.astype("int64")
    frame["day_of_week"] = pd.Series(_DAYS[when.dt.dayofweek.to_numpy()], dtype="str")
    frame["movie_age"] = (when - frame["release_date"]).dt.total_seconds() / _SECONDS_PER_YEAR
    columns = ID_COLUMNS + [TIME_COLUMN] + LABEL_COLUMNS + USER_FEATURES + ITEM_FEATURES + TIME_FEATURES
    return frame[columns]

"""Loaders of the real data sets: raw files in `<data_dir>/<data set>/` to one typed frame.

Each loader reads its raw files with pyarrow in blocks, skips and counts malformed rows
(failing above `max_malformed_fraction`), and returns raw, unencoded columns: numbers as
int64/float64, categories as strings (missing as NaN), the label columns, and the
id/group/time columns the splits use. Splitting is left to `mtrec.data.make_splits`.

| data set (folder) | loader | labels |
|---|---|---|
| census_income_kdd | `load_census` | income, never_married, college |
| movielens_100k | `load_movielens` (+ `load_movielens_users`, `load_movielens_items`) | rating, like |
| hillstrom_email_marketing | `load_hillstrom` | visit, conversion, spend |
| diabetes_130_us_hospitals | `load_diabetes` | readmit_30d, readmit_any, time_in_hospital |
| sp500_stocks_5yr | `load_sp500` (features from `sp500_features`) | next_return, next_up, future_vol_5d |

These are the optional loader hooks of the pipelines (`mtrec.pipelines.datasets`): a raw
format that needs parsing gets one; your own CSV/Parquet table needs none (name it with
`experiment.data.path` in the pipeline config).

`data_dir` defaults to `default_data_dir()`: `$MTREC_DATA_DIR`, else `../shared/datasets`.
`load_dataset(name, ...)` calls a loader by its data set's folder name.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pandas as pd

from mtrec.data.datasets.census import load_census
from mtrec.data.datasets.common import DATA_DIR_ENV, MalformedRowsWarning, default_data_dir
from mtrec.data.datasets.diabetes import load_diabetes
from mtrec.data.datasets.hillstrom import load_hillstrom
from mtrec.data.datasets.movielens import load_movielens, load_movielens_items, load_movielens_users
from mtrec.data.datasets.sp500 import load_sp500, sp500_features

#: Loader of each data set, keyed by its folder name under the data folder.
LOADERS: dict[str, Callable[..., pd.DataFrame]] = {
    "census_income_kdd": load_census,
    "movielens_100k": load_movielens,
    "hillstrom_email_marketing": load_hillstrom,
    "diabetes_130_us_hospitals": load_diabetes,
    "sp500_stocks_5yr": load_sp500,
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, **kwargs) -> pd.DataFrame:
    """Loads a data set by its folder name (a key of `LOADERS`).

    Args:
        name: e.g. `"census_income_kdd"`.
        data_dir: the folder holding the data-set folders. Defaults to
            `default_data_dir()`.
        **kwargs: passed to the loader (`nrows`, `max_malformed_fraction`).

    Returns:
        The loader's frame.

    Raises:
        ValueError: unknown name (the known ones are listed).
    """
    if name not in LOADERS:
        from mtrec.utils.validation import closest

        raise ValueError(f"Unknown data set {name!r}.{closest(name, LOADERS)} Known: {sorted(LOADERS)}.")
    return LOADERS[name](data_dir, **kwargs)


__all__ = [
    "DATA_DIR_ENV",
    "LOADERS",
    "MalformedRowsWarning",
    "default_data_dir",
    "load_census",
    "load_dataset",
    "load_diabetes",
    "load_hillstrom",
    "load_movielens",
    "load_movielens_items",
    "load_movielens_users",
    "load_sp500",
    "sp500_features",
]

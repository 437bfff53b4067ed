"""A synthetic click log of any size, written as Parquet shards in bounded memory.

The shape of the interaction logs `mtrec prepare` exists for (issue 12's
benchmark table), with 26 columns:

- `n0` ... `n12`: 13 numeric columns, each missing (NaN) in 5% of rows;
  even ones normal, odd ones heavy-tailed counts (log-normal, rounded).
- `c0` ... `c9`: 10 categorical ids (int64), Zipf-distributed (exponent
  1.1, truncated) over cardinalities spaced evenly on a log scale from 10
  to 1,000,000; id 0 is the most frequent.
- `click` (0/1, about 7%), `purchase` (0/1, only after a click) and
  `dwell_time` (seconds, log-normal; missing without a click). They depend
  on a few numeric columns and on a per-id effect of `c1`, `c4` and `c7`, so a
  model has something to learn.

Each shard is generated from `numpy.random.default_rng([seed, shard])`, so a
shard's rows never depend on the shard size of the others and any shard can
be regenerated alone. Only one shard is in memory at a time.

Example:

```python
paths = write_click_log("clicks/", rows=4_000_000, shard_rows=1_000_000)
frame = make_click_log(10_000)
```
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec.data.io import write_parquet

NUM_NUMERIC = 13
NUM_CATEGORICAL = 10
#: Cardinality of `c0` ... `c9`: 10 to 1,000,000, evenly on a log scale.
CARDINALITIES = tuple(int(round(10 ** (1 + 5 * i / (NUM_CATEGORICAL - 1)))) for i in range(NUM_CATEGORICAL))
MISSING_RATE = 0.05
ZIPF_EXPONENT = 1.1
LABELS = ("click", "purchase", "dwell_time")
NUMERIC_COLUMNS = tuple(f"n{i}" for i in range(NUM_NUMERIC))
CATEGORICAL_COLUMNS = tuple(f"c{i}" for i in range(NUM_CATEGORICAL))


@functools.lru_cache(maxsize=NUM_CATEGORICAL)
def _zipf_cdf(cardinality: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, cardinality + 1, dtype=np.float64) ** ZIPF_EXPONENT
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _id_effect(ids: np.ndarray, salt: int) -> np.ndarray:
    """A fixed pseudo-random effect in [-1, 1) per id (a hash, so no table is kept)."""
    with np.errstate(over="ignore"):
        z = (ids.astype(np.uint64) + np.uint64(salt)) * np.uint64(0x9E3779B97F4A7C15)
        z ^= z >> np.uint64(29)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0


def make_click_log(rows: int, seed: int = 0, shard: int = 0) -> pd.DataFrame:
    """One shard of the click log.

    Args:
        rows: number of rows; a non-negative integer.
        seed: seed of the log. Defaults to `0`.
        shard: index of the shard (each shard has its own random stream).
            Defaults to `0`.

    Returns:
        A DataFrame with the columns `n0`..`n12` (float64), `c0`..`c9`
        (int64), `click`, `purchase` (int8) and `dwell_time` (float64).
    """
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 0:
        raise ValueError(f"`rows` must be a non-negative integer. Received: rows={rows!r}")
    rng = np.random.default_rng([int(seed), int(shard)])
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC_COLUMNS):
        if i % 2 == 0:
            values = rng.normal(i / 4, 1.0 + i / 8, rows)
        else:
            values = np.round(rng.lognormal(1.0, 1.0 + i / 13, rows))
        values[rng.random(rows) < MISSING_RATE] = np.nan
        columns[name] = values
    for name, cardinality in zip(CATEGORICAL_COLUMNS, CARDINALITIES):
        ranks = np.searchsorted(_zipf_cdf(cardinality), rng.random(rows), side="right")
        columns[name] = ranks.astype(np.int64)
    n0 = np.nan_to_num(columns["n0"])
    n1 = np.log1p(np.nan_to_num(columns["n1"]))
    effect = _id_effect(columns["c1"], 1) + _id_effect(columns["c4"], 4) + _id_effect(columns["c7"], 7)
    click_logit = -2.6 + 0.5 * n0 - 0.3 * n1 + 0.8 * effect
    click = rng.random(rows) < 1.0 / (1.0 + np.exp(-click_logit))
    buy_logit = -1.5 + 0.4 * np.nan_to_num(columns["n2"]) + 0.6 * _id_effect(columns["c4"], 44)
    purchase = click & (rng.random(rows) < 1.0 / (1.0 + np.exp(-buy_logit)))
    dwell = rng.lognormal(3.0 + 0.3 * effect, 0.8)
    dwell[~click] = np.nan
    columns["click"] = click.astype(np.int8)
    columns["purchase"] = purchase.astype(np.int8)
    columns["dwell_time"] = dwell
    return pd.DataFrame(columns)


def write_click_log(folder: str | os.PathLike, rows: int, shard_rows: int = 1_000_000,
                    seed: int = 0) -> list[Path]:
    """Writes the click log as Parquet shards `part-00000.parquet`, ... into `folder`.

    Memory holds one shard. Each shard is written atomically, so a folder
    never holds half a shard.

    Args:
        folder: the output folder (created when missing).
        rows: total rows; a non-negative integer.
        shard_rows: rows per shard (the last may have fewer). Defaults to
            `1_000_000`.
        seed: seed of the log. Defaults to `0`.

    Returns:
        The shard paths, in order.
    """
    if isinstance(shard_rows, bool) or not isinstance(shard_rows, (int, np.integer)) or shard_rows < 1:
        raise ValueError(f"`shard_rows` must be a positive integer. Received: shard_rows={shard_rows!r}")
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 0:
        raise ValueError(f"`rows` must be a non-negative integer. Received: rows={rows!r}")
    folder = Path(folder)
    paths = []
    for shard in range(max(1, math.ceil(rows / shard_rows))):
        count = min(shard_rows, rows - shard * shard_rows)
        path = folder / f"part-{shard:05d}.parquet"
        write_parquet(make_click_log(count, seed, shard), path)
        paths.append(path)
    return paths

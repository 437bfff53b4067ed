"""S&P 500 daily prices, 2013-02-08 to 2018-02-07 (505 tickers): next-day return, direction and volatility.

Raw file in `<data_dir>/sp500_stocks_5yr/`: `all_stocks_5yr.csv.gz` (or
`all_stocks_5yr.csv`), header `date,open,high,low,close,volume,Name`.

One row per (ticker, trading day t). Features use day t and earlier only; labels use
days after t only (`sp500_features` builds both; a test moves future prices and checks
that no feature changes). With r_t = close_t / close_{t-1} - 1, the ticker's return
from its previous trading day:

| column | definition |
|---|---|
| `ret_1d`, `ret_5d`, `ret_20d` | close_t / close_{t-k} - 1, k = 1, 5, 20 trading days |
| `vol_5d`, `vol_20d` | realized volatility sqrt(mean(r^2)) over r_{t-k+1..t} |
| `volume_z` | z-score of log(1 + volume_t) against the 20 previous days (0 when they are constant) |
| `hl_range` | log(high_t / low_t), the day's range (NaN where high or low is missing) |
| `day_of_week` | "Mon".."Fri" of t |
| `next_return` (label) | r_{t+1} |
| `next_up` (label) | 1 when r_{t+1} > 0, else 0 |
| `future_vol_5d` (label) | sqrt(mean(r^2)) over r_{t+1..t+5} |

Rows where a feature's lag or a label is undefined are dropped: each ticker's first
`MAX_LAG` (20) and last `HORIZON` (5) rows. Prices are as published (IEX), not
adjusted for every corporate action: a few spin-offs and one-day glitches show as jumps
(see PROVENANCE.md); they are kept. Labels near a split date look a few days past it
(up to `HORIZON`), so a time split puts a row's label partly in the next period.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mtrec.data.datasets.common import Batch, MalformedRows, check_loader_args, read_raw
from mtrec.errors import DataError

FOLDER = "sp500_stocks_5yr"
FILES = ("all_stocks_5yr.csv.gz", "all_stocks_5yr.csv")
RAW_COLUMNS = ["date", "open", "high", "low", "close", "volume", "Name"]
_READ_COLUMNS = [c for c in RAW_COLUMNS if c != "open"]  # no feature uses the opening price

#: Trading days of history a row needs (the longest lag), and of future its labels use.
MAX_LAG = 20
HORIZON = 5

NUMERIC_FEATURES = ["ret_1d", "ret_5d", "ret_20d", "vol_5d", "vol_20d", "volume_z", "hl_range"]
CATEGORICAL_FEATURES = ["ticker", "day_of_week"]
LABEL_COLUMNS = ["next_return", "next_up", "future_vol_5d"]
COLUMNS = ["date"] + CATEGORICAL_FEATURES + NUMERIC_FEATURES + LABEL_COLUMNS

_DAYS = np.array(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], dtype=object)


def _rolling(values: pd.Series, groups: pd.Series, window: int, stat: str = "mean") -> pd.Series:
    """`stat` ("mean" or "std") of the last `window` values within each group, NaN until it is full."""
    rolled = getattr(values.groupby(groups, sort=False).rolling(window), stat)()
    return rolled.droplevel(0).reindex(values.index)


def sp500_features(prices: pd.DataFrame) -> pd.DataFrame:
    """Past-only features and future labels per (ticker, day) from daily prices.

    Args:
        prices: columns `date` (datetime), `ticker`, `close`, `volume`, and
            optionally `high`, `low`; one row per ticker and trading day, in any
            order.

    Returns:
        `COLUMNS`, sorted by ticker then date, without each ticker's first
        `MAX_LAG` and last `HORIZON` rows (where a lag or label is undefined).
    """
    frame = prices.sort_values(["ticker", "date"], ignore_index=True)
    ticker = frame["ticker"]
    by_ticker = frame.groupby(ticker, sort=False)
    close = frame["close"]
    returns = close / by_ticker["close"].shift(1) - 1
    squared = returns**2
    out = pd.DataFrame({"date": frame["date"], "ticker": ticker})
    out["day_of_week"] = pd.Series(_DAYS[frame["date"].dt.dayofweek.to_numpy()], dtype="str")
    out["ret_1d"] = returns
    for k in (5, 20):
        out[f"ret_{k}d"] = close / by_ticker["close"].shift(k) - 1
    for k in (5, 20):
        out[f"vol_{k}d"] = np.sqrt(_rolling(squared, ticker, k))
    # Today's volume against the 20 days before it (shift(1) keeps today out of the baseline).
    log_volume = np.log1p(frame["volume"].astype("float64"))
    past = log_volume.groupby(ticker, sort=False).shift(1)
    mean = _rolling(past, ticker, MAX_LAG)
    std = _rolling(past, ticker, MAX_LAG, "std")
    out["volume_z"] = np.where(std > 0, (log_volume - mean) / std.where(std > 0), 0.0)
    out.loc[std.isna(), "volume_z"] = np.nan
    if "high" in frame and "low" in frame:
        out["hl_range"] = np.log(frame["high"] / frame["low"])
    else:
        out["hl_range"] = np.nan
    next_return = returns.groupby(ticker, sort=False).shift(-1)
    out["next_return"] = next_return
    out["next_up"] = (next_return > 0).astype("int64")
    # The mean of r^2 over t+1..t+HORIZON is the trailing mean at t+HORIZON, moved back.
    trailing = _rolling(squared, ticker, HORIZON)
    out["future_vol_5d"] = np.sqrt(trailing.groupby(ticker, sort=False).shift(-HORIZON))
    position = by_ticker.cumcount()
    remaining = by_ticker.cumcount(ascending=False)
    keep = (position >= MAX_LAG) & (remaining >= HORIZON)
    return out.loc[keep, COLUMNS].reset_index(drop=True)


def _convert(batch: Batch) -> pd.DataFrame:
    raw_date = batch.column("date")
    date = pd.to_datetime(raw_date, format="%Y-%m-%d", errors="coerce")
    batch.reject(date.isna().to_numpy(),
                 lambda i: f"column 'date' = {raw_date.iloc[i]!r} is not a YYYY-MM-DD date")
    frame = pd.DataFrame({
        "date": date,
        "ticker": batch.string("Name", required=True),
        "high": batch.number("high", required=False, low=0),
        "low": batch.number("low", required=False, low=0),
        "close": batch.number("close"),
        "volume": batch.number("volume", low=0),
    })
    batch.reject((frame["close"] <= 0).to_numpy(),
                 lambda i: f"column 'close' = {frame['close'].iloc[i]!r} <= 0")
    return frame


def load_sp500(data_dir: str | os.PathLike | None = None, *, nrows: int | None = None,
               max_malformed_fraction: float = 0.001) -> pd.DataFrame:
    """Loads S&P 500 daily prices as per-(ticker, day) features and next-day labels.

    Args:
        data_dir: the folder holding `sp500_stocks_5yr/`. Defaults to
            `default_data_dir()`.
        nrows: read at most this many raw price rows (the file is ordered by
            ticker, so the first tickers come whole). Defaults to all.
        max_malformed_fraction: malformed price rows (wrong field count, a bad
            date, a missing or non-positive close, a bad volume, a repeated
            ticker and date) are skipped with a warning; more than this fraction
            fails. Missing open/high/low are allowed. Defaults to `0.001`.

    Returns:
        `COLUMNS` (see the module docstring): `date` (datetime64, the time-split
        column), `ticker`, `day_of_week` (strings), float64 features, and the
        labels `next_return`, `next_up` (int64 0/1), `future_vol_5d`; sorted by
        ticker then date.

    Raises:
        DataError: the folder or file is missing, empty or unreadable, too many
            rows are malformed, or no ticker has enough days for a row.
        SchemaError: an expected column is missing from the header (renamed upstream?).

    Example:

    ```python
    frame = load_sp500()
    frame.groupby("date")[["ret_1d", "next_return"]].corr(method="spearman")
    ```
    """
    nrows, max_malformed_fraction = check_loader_args(nrows, max_malformed_fraction)
    path, prices = read_raw(data_dir, FOLDER, FILES, columns=_READ_COLUMNS,
                            convert=_convert, header=True, nrows=nrows,
                            max_malformed_fraction=max_malformed_fraction)
    repeated = prices.duplicated(["ticker", "date"]).to_numpy()
    if repeated.any():
        malformed = MalformedRows(path)
        first = prices.loc[repeated].iloc[0]
        malformed.add(int(repeated.sum()), f"ticker {first['ticker']} has {first['date']:%Y-%m-%d} twice")
        malformed.check(len(prices), max_malformed_fraction)
        prices = prices.loc[~repeated]
    frame = sp500_features(prices)
    if frame.empty:
        raise DataError(
            f"No rows left from {path.resolve()}: every ticker needs more than "
            f"{MAX_LAG + HORIZON} trading days (lags of {MAX_LAG}, labels {HORIZON} days ahead)."
        )
    return frame

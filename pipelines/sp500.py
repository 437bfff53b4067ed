"""S&P 500 hooks: the daily rank IC, and the naive forecasters every model must beat.

- `rank_ic`: on each test day, the Spearman correlation across tickers between
  the predicted and the realized next-day return; averaged over days (days
  with fewer than 2 tickers or constant predictions are left out).
- Reference predictors: `zero_return` (next return 0, no direction signal),
  `persistence` (tomorrow repeats today: next return = `ret_1d`, direction
  from its sign, future volatility = the past 5 days' `vol_5d`) and
  `historical_mean` (each ticker's training mean of every label; the overall
  mean for a ticker unseen in training).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtrec.pipelines.datasets import DatasetHooks

DATE, TICKER = "date", "ticker"
RETURN, DIRECTION, VOLATILITY = "next_return", "next_up", "future_vol_5d"


def daily_rank_ic(dates: pd.Series | np.ndarray, predicted: np.ndarray, realized: np.ndarray) -> tuple[float, int]:
    """Mean over days of the cross-sectional Spearman correlation.

    Args:
        dates: the day of each row.
        predicted: predicted returns.
        realized: realized returns.

    Returns:
        `(mean rank IC, number of days that count)`; NaN and 0 when no day counts.
    """
    frame = pd.DataFrame({"day": np.asarray(dates), "p": np.asarray(predicted, dtype="float64").ravel(),
                          "y": np.asarray(realized, dtype="float64").ravel()}).dropna()
    ranks = frame.groupby("day")[["p", "y"]].rank()
    ranks["day"] = frame["day"]
    grouped = ranks.groupby("day")
    # Pearson correlation of the ranks per day, vectorized over days.
    centered = ranks[["p", "y"]] - grouped[["p", "y"]].transform("mean")
    centered["day"] = ranks["day"]
    sums = (centered.assign(pp=centered.p ** 2, yy=centered.y ** 2, py=centered.p * centered.y)
            .groupby("day")[["pp", "yy", "py"]].sum())
    counts = grouped.size()
    valid = (counts >= 2) & (sums.pp > 0) & (sums.yy > 0)
    if not valid.any():
        return float("nan"), 0
    ic = sums.py[valid] / np.sqrt(sums.pp[valid] * sums.yy[valid])
    return float(ic.mean()), int(valid.sum())


def extra_metrics(test: pd.DataFrame, predictions: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """`{"next_return": {"rank_ic": ..., "rank_ic_days": ...}}` when next-return predictions exist."""
    if RETURN not in predictions:
        return {}
    ic, days = daily_rank_ic(test[DATE], predictions[RETURN], test[RETURN].to_numpy())
    return {RETURN: {"rank_ic": ic, "rank_ic_days": days}}


def reference_predictors(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """The zero-return, persistence and historical-mean forecasts of the test rows."""
    n = len(test)
    up_rate = float(train[DIRECTION].mean())
    past_return = test["ret_1d"].fillna(0.0).to_numpy()
    # Direction from today's return, as a probability so log loss stays defined (AUC only needs the order).
    scale = past_return.std() or 1.0  # unit-free: returns may be fractions or percent
    persistence_up = 1.0 / (1.0 + np.exp(-np.clip(past_return / scale, -30, 30)))
    means = train.groupby(TICKER)[[RETURN, DIRECTION, VOLATILITY]].mean()
    by_ticker = means.reindex(test[TICKER].to_numpy())
    overall = train[[RETURN, DIRECTION, VOLATILITY]].mean()
    historical = {task: by_ticker[task].fillna(overall[task]).to_numpy() for task in (RETURN, DIRECTION, VOLATILITY)}
    return {
        "zero_return": {RETURN: np.zeros(n), DIRECTION: np.full(n, up_rate),
                        VOLATILITY: np.full(n, float(train[VOLATILITY].mean()))},
        "persistence": {RETURN: past_return, DIRECTION: persistence_up,
                        VOLATILITY: test["vol_5d"].fillna(overall[VOLATILITY]).to_numpy()},
        "historical_mean": historical,
    }


HOOKS = DatasetHooks(extra_metrics=extra_metrics, reference_predictors=reference_predictors,
                     extra_columns=(DATE, TICKER, "ret_1d", "vol_5d"))

"""The multi-task ranker's data and scores: click negatives from retrieval, task scores per candidate.

The ranker has three behaviours: `click` (1 for an interaction, 0 for a
sampled retrieval candidate the user did not interact with), `rating`
(regression, known on clicked rows only: NaN elsewhere, so masked out of its
loss) and `like` (rating >= 4; 0 on negatives, as an ESMM chain after click
requires).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtrec.recommend.blend import Blend
from mtrec.recommend.config import NegativesConfig, RecommendDataConfig
from mtrec.scoring import score_frame
from mtrec.training.trained_run import TrainedRun

#: Label column of the click task in the ranking rows.
CLICK = "click"


def ranking_rows(train: pd.DataFrame, candidates: pd.DataFrame, negatives: NegativesConfig,
                 data: RecommendDataConfig) -> pd.DataFrame:
    """Positives (every training interaction) and sampled negatives, with the three labels.

    Args:
        train: training interactions (user, item, rating, like).
        candidates: retrieval candidates per user (user, item, `rank`),
            training items already excluded.
        negatives: the pool size `k` and sampling `rate` (each unrated
            candidate in a user's top k is kept with probability `rate`).
        data: the column names.

    Returns:
        Columns user, item, `click`, rating (NaN on negatives), like (0 on
        negatives); positives first.
    """
    user, item = data.user_id, data.item_id
    positives = train[[user, item, data.rating, data.like]].assign(**{CLICK: 1})
    pool = candidates.loc[candidates["rank"] <= negatives.k, [user, item]]
    # Candidates exclude training items already; the anti-join keeps this true for any candidate table.
    seen = pool.merge(train[[user, item]].drop_duplicates(), on=[user, item], how="left", indicator=True)
    pool = pool[(seen["_merge"] == "left_only").to_numpy()]
    rng = np.random.default_rng(negatives.seed)
    sampled = pool[rng.random(len(pool)) < negatives.rate]
    negative_rows = sampled.assign(**{CLICK: 0, data.rating: np.nan, data.like: 0})
    rows = pd.concat([positives, negative_rows[positives.columns]], ignore_index=True)
    rows[CLICK] = rows[CLICK].astype("int64")
    rows[data.like] = rows[data.like].astype("int64")
    rows[data.rating] = rows[data.rating].astype("float64")
    return rows


def score_candidates(run: TrainedRun, rows: pd.DataFrame, blend: Blend, gate_summary: bool = True,
                     batch_size: int | None = None) -> pd.DataFrame:
    """Every task's score, the blended `score` and (optionally) a gate summary for each candidate row.

    Args:
        run: the trained ranker.
        rows: candidates with the ranker's feature columns and id columns.
        blend: turns the task scores into `score`.
        gate_summary: for gated models, add `gate_<gate>_expert` (the
            expert with the largest weight) and `gate_<gate>_weight` (that
            weight) per gate.
        batch_size: rows per forward pass.

    Returns:
        The id columns, one column per task output (and `<task>_conditional`
        for chained tasks), `score`, and the gate columns; in row order.
    """
    features = run.encoder.transform(rows)  # once, for the scores and the gates
    scores = score_frame(run, rows, batch_size=batch_size, features=features)
    scores["score"] = blend(scores)
    if gate_summary and getattr(run.model, "gated", False):
        gates = run.model.gate_weights(features, batch_size=batch_size or run.config.scoring.batch_size)
        for key, weights in gates.items():
            name = key.replace("/", "_")
            scores[f"gate_{name}_expert"] = weights.argmax(axis=1).astype("int16")
            scores[f"gate_{name}_weight"] = weights.max(axis=1).astype("float32")
    return scores


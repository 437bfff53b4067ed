"""Offline top-N metrics against held-out interactions: Recall@N, NDCG@N, MRR@N.

Binary relevance: an item is relevant to a user when it is among that user's
held-out interactions (or a subset of them, such as the liked ones). For a
user with relevant set R and recommended list L (best first, truncated to N):

- Recall@N = |R ∩ L[:N]| / |R|
- NDCG@N = DCG / IDCG with DCG = sum over hits at rank r of 1 / log2(r + 1)
  and IDCG the DCG of min(|R|, N) hits at ranks 1, 2, ...
- MRR@N = 1 / (rank of the first hit in L[:N]), 0 without a hit

Each is averaged over the users with at least one relevant item; such a user
without recommendations scores 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def ranking_metrics(recommended: pd.DataFrame, relevant: pd.DataFrame, n: int,
                    user: str = "user_id", item: str = "item_id", rank: str = "rank") -> dict[str, float]:
    """Recall@n, NDCG@n and MRR@n averaged over users with relevant items.

    Args:
        recommended: one row per (user, recommended item) with its `rank`
            (1 = best); ranks beyond n are ignored.
        relevant: one row per (user, relevant item).
        n: list length.
        user, item, rank: column names.

    Returns:
        `{"recall": ..., "ndcg": ..., "mrr": ..., "users": number averaged over}`.
    """
    relevant = relevant[[user, item]].drop_duplicates()
    if relevant.empty:
        return {"recall": float("nan"), "ndcg": float("nan"), "mrr": float("nan"), "users": 0}
    listed = recommended.loc[recommended[rank] <= n, [user, item, rank]]
    hits = listed.merge(relevant, on=[user, item], how="inner")
    hits = hits.assign(gain=1.0 / np.log2(hits[rank].to_numpy("float64") + 1.0))
    per_user = pd.DataFrame({"relevant": relevant.groupby(user).size()})
    per_user["hits"] = hits.groupby(user).size()
    per_user["dcg"] = hits.groupby(user)["gain"].sum()
    per_user["first"] = hits.groupby(user)[rank].min()
    per_user = per_user.fillna({"hits": 0.0, "dcg": 0.0})
    ideal_hits = np.minimum(per_user["relevant"].to_numpy(), n)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, n + 2)))
    idcg = discounts[ideal_hits - 1]
    mrr = np.where(per_user["first"].notna(), 1.0 / per_user["first"].to_numpy("float64"), 0.0)
    return {
        "recall": float((per_user["hits"] / per_user["relevant"]).mean()),
        "ndcg": float((per_user["dcg"].to_numpy() / idcg).mean()),
        "mrr": float(np.nan_to_num(mrr).mean()),
        "users": int(len(per_user)),
    }

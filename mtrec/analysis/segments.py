"""Gate weights per segment of a column: do tasks route occupations, tickers or age groups differently?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mtrec.analysis.gate_stats import check_gates
from mtrec.training.gates import entropy
from mtrec.utils.validation import require_columns

MISSING = "(missing)"
OTHER = "(other)"


def segment_labels(values: pd.Series | Sequence, bins: int = 5, max_segments: int = 20) -> pd.Series:
    """Turns a column into segment labels.

    A numeric column with more than `max_segments` distinct values is cut
    into `bins` quantile buckets (e.g. age into quintiles); any other column
    keeps its values, the rarest folded into `"(other)"` beyond
    `max_segments`. Missing values become `"(missing)"`.

    Args:
        values: the column.
        bins: quantile buckets for a many-valued numeric column.
        max_segments: most segments kept.

    Returns:
        A categorical Series of string labels, aligned with `values`; its
        categories are in display order (buckets from low to high, other
        columns from the most to the least frequent value), with
        `"(other)"` and `"(missing)"` last.
    """
    series = pd.Series(values).reset_index(drop=True)
    missing = series.isna()
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and series[~missing].nunique() > max_segments:
        buckets = pd.qcut(series[~missing], q=bins, duplicates="drop")
        labels = pd.Series(MISSING, index=series.index, dtype=object)
        labels[~missing] = buckets.astype(str)
        order = [str(c) for c in buckets.cat.categories]
    else:
        labels = series.astype(object).where(~missing, MISSING).astype(str)
        counts = labels.value_counts()
        if len(counts) > max_segments:
            keep = set(counts.index[:max_segments - 1])
            labels = labels.where(labels.isin(keep), OTHER)
        order = [c for c in labels.value_counts().index if c not in (OTHER, MISSING)]
    order += [c for c in (OTHER, MISSING) if (labels == c).any()]
    return pd.Series(pd.Categorical(labels, categories=order))


def gates_by_segment(gates: Mapping[str, np.ndarray], segments: pd.Series | Sequence,
                     expert_names: Mapping[str, list[str]] | None = None) -> pd.DataFrame:
    """Mean gate weight per segment, per gate, per expert.

    Args:
        gates: {gate name: (n, experts)}, rows aligned with `segments`.
        segments: one segment label per row (see `segment_labels`).
        expert_names: {gate name: column names}; defaults to `e0, e1, ...`.

    Returns:
        A long DataFrame: columns `gate`, `segment`, `rows`, `entropy` (the
        mean per-example entropy in the segment), then one column per
        expert with the segment's mean weight. Segments in the categories'
        order for a categorical `segments`, else by size.

    Raises:
        ValueError: `segments` and the gates differ in length.
    """
    labels = pd.Series(segments).reset_index(drop=True)
    # A categorical (from `segment_labels`) keeps its order; anything else goes by size.
    order = ([c for c in labels.cat.categories if (labels == c).any()]
             if isinstance(labels.dtype, pd.CategoricalDtype) else list(labels.value_counts().index))
    labels = labels.astype(str)
    order = [str(c) for c in order]
    rows = []
    for gate, value in gates.items():
        g = check_gates(value, gate)
        if len(g) != len(labels):
            raise ValueError(f"Gate '{gate}' has {len(g)} rows but the segment column has {len(labels)}.")
        names = (expert_names or {}).get(gate) or [f"e{j}" for j in range(g.shape[1])]
        per_row_entropy = entropy(g, axis=1)
        for segment in order:
            mask = (labels == segment).to_numpy()
            mean = g[mask].mean(axis=0)
            rows.append({"gate": gate, "segment": segment, "rows": int(mask.sum()),
                         "entropy": float(per_row_entropy[mask].mean()),
                         **dict(zip(names, mean.tolist()))})
    return pd.DataFrame(rows)


def segment_column(frame: pd.DataFrame, column: str, source: str = "the data") -> pd.Series:
    """The column to segment by, with a clear error when it is missing.

    Raises:
        SchemaError: naming the column, with the closest present one.
    """
    require_columns(frame, [column], source, what="Segment column")
    return frame[column]

"""Plots of the analysis, as matplotlib figures.

Figures are built with `matplotlib.figure.Figure` directly, not pyplot: no
GUI backend is needed (they render with Agg when saved), nothing is kept in
pyplot's global figure list, and a notebook still displays a returned
figure inline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mtrec.analysis.gate_stats import check_gates
from mtrec.analysis.transfer import TransferReport
from mtrec.training.gates import GateLevel, entropy, group_gates
from mtrec.utils.atomic import atomic_path


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Writes a figure as PNG, atomically.

    Returns:
        The path written.
    """
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


def _heatmap(ax: Any, matrix: pd.DataFrame, vmin: float | None = 0.0, vmax: float | None = None,
             cmap: str = "viridis", fmt: str = "{:.2f}") -> Any:
    values = matrix.to_numpy(dtype="float64")
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(values.shape[1]), [str(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(values.shape[0]), [str(i) for i in matrix.index])
    if values.size <= 200:
        top = np.nanmax(values) if np.isfinite(values).any() else 1.0
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                        color="black" if v > 0.6 * (vmax or top) else "white")
    return image


def utilization_matrix(level: GateLevel | Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Gate x expert mean weights of one level (NaN where a gate does not see an expert)."""
    level = level if isinstance(level, GateLevel) else group_gates(level)[0]
    out = pd.DataFrame(np.nan, index=list(level.gates), columns=level.all_experts)
    for gate, value in level.gates.items():
        out.loc[gate, level.experts[gate]] = check_gates(value, gate).mean(axis=0)
    return out


def plot_utilization(level: GateLevel | Mapping[str, np.ndarray], title: str | None = None) -> Figure:
    """Task x expert heatmap of mean gate weights (expert utilization)."""
    matrix = utilization_matrix(level)
    fig = Figure(figsize=(1.2 + 0.55 * matrix.shape[1], 1.2 + 0.45 * matrix.shape[0]))
    ax = fig.add_subplot()
    image = _heatmap(ax, matrix, vmax=float(np.nanmax(matrix.to_numpy())))
    fig.colorbar(image, ax=ax, label="mean gate weight")
    ax.set_xlabel("expert")
    ax.set_ylabel("gate")
    ax.set_title(title or "Expert utilization")
    return fig


def plot_entropy_histograms(gates: Mapping[str, np.ndarray], title: str | None = None,
                            bins: int = 30) -> Figure:
    """One histogram per gate of the per-example gate entropy; the dashed line is log(experts)."""
    names = list(gates)
    fig = Figure(figsize=(3.2 * len(names), 2.8))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        g = check_gates(gates[name], name)
        ax.hist(entropy(g, axis=1), bins=bins, range=(0, np.log(g.shape[1]) * 1.02), color="tab:blue")
        ax.axvline(np.log(g.shape[1]), color="black", linestyle="--", linewidth=1)
        ax.set_title(name)
        ax.set_xlabel("gate entropy (nats)")
    axes[0].set_ylabel("examples")
    fig.suptitle(title or "Per-example gate entropy (dashed: uniform)")
    fig.tight_layout()
    return fig


def plot_segment_heatmap(by_segment: pd.DataFrame, gate: str, column: str = "segment",
                         title: str | None = None) -> Figure:
    """Segment x expert mean gate weights of one gate (from `gates_by_segment`)."""
    part = by_segment[by_segment["gate"] == gate].set_index("segment")
    matrix = part.drop(columns=["gate", "rows", "entropy"]).dropna(axis=1, how="all")
    matrix.index = [f"{s} ({n:,})" for s, n in zip(part.index, part["rows"])]
    fig = Figure(figsize=(1.5 + 0.55 * matrix.shape[1], 1.0 + 0.35 * matrix.shape[0]))
    ax = fig.add_subplot()
    image = _heatmap(ax, matrix, vmax=float(np.nanmax(matrix.to_numpy())))
    fig.colorbar(image, ax=ax, label="mean gate weight")
    ax.set_xlabel("expert")
    ax.set_ylabel(f"{column} (rows)")
    ax.set_title(title or f"Gate '{gate}' by {column}")
    return fig


def plot_matrix(matrix: pd.DataFrame, title: str, vmin: float | None = None, vmax: float | None = None,
                cmap: str = "coolwarm", label: str = "") -> Figure:
    """A labelled heatmap of a square task x task matrix (correlations, divergences)."""
    fig = Figure(figsize=(1.6 + 0.7 * matrix.shape[1], 1.2 + 0.6 * matrix.shape[0]))
    ax = fig.add_subplot()
    image = _heatmap(ax, matrix, vmin=vmin, vmax=vmax, cmap=cmap)
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title)
    return fig


def plot_transfer(report: TransferReport, title: str | None = None) -> Figure:
    """Bar chart of each task's relative gain (%) over the single-task baseline; red = negative transfer."""
    rows = report.rows
    fig = Figure(figsize=(1.5 + 0.9 * len(rows), 3.2))
    ax = fig.add_subplot()
    gains = [r.gain for r in rows]
    colors = ["tab:red" if r.negative_transfer else "tab:green" for r in rows]
    ax.bar([f"{r.task}\n({r.metric})" for r in rows], gains, color=colors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(report.delta_m, color="tab:blue", linestyle="--", linewidth=1,
               label=f"Δm = {report.delta_m:+.2f}%")
    ax.set_ylabel("gain over single-task (%)")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or "Transfer: multi-task vs single-task")
    fig.tight_layout()
    return fig


def plot_history(history: pd.DataFrame, columns: Sequence[str], ylabel: str, title: str,
                 x: str = "epoch", reference: float | None = None) -> Figure:
    """Line plot of per-epoch (or per-step) values, e.g. effective experts or gradient cosine."""
    fig = Figure(figsize=(5.5, 3.2))
    ax = fig.add_subplot()
    for column in columns:
        ax.plot(history[x], history[column], marker="o", markersize=3, label=column)
    if reference is not None:
        ax.axhline(reference, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_correlation_sweep(summary: pd.DataFrame, title: str | None = None) -> Figure:
    """Test loss and its paired degradation against task correlation, one line per model.

    Args:
        summary: `correlation_sweep.summarize` output (columns `model`,
            `correlation`, `test_loss_mean`, `test_loss_std`, `degradation`,
            `degradation_se`).

    Returns:
        Two panels: the mean test loss (bars: standard deviation over seeds),
        and the loss increase over the same model and seed at the highest
        correlation (bars: standard error). Lower is better in both.
    """
    fig = Figure(figsize=(9.0, 3.4))
    left, right = fig.subplots(1, 2)
    for model, part in summary.groupby("model", sort=False):
        part = part.sort_values("correlation")
        left.errorbar(part["correlation"], part["test_loss_mean"], yerr=part["test_loss_std"].fillna(0),
                      marker="o", capsize=3, label=model)
        right.errorbar(part["correlation"], part["degradation"], yerr=part["degradation_se"].fillna(0),
                       marker="o", capsize=3, label=model)
    left.set_ylabel("test loss (mean MSE of the tasks)")
    left.set_title("Test loss (bars: std over seeds)")
    right.axhline(0, color="black", linewidth=0.8)
    right.set_ylabel("loss minus loss at the top correlation")
    right.set_title("Degradation, paired by seed (bars: s.e.)")
    for ax in (left, right):
        ax.set_xlabel("task correlation")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

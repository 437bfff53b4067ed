"""Gate analysis of a trained run on a data set: tables, JSON and plots (`mtrec gates`).

Collects the gate weights of every level, then per level: a summary per
gate (entropy, effective experts, top expert), expert utilization,
Jensen-Shannon divergence between tasks' gates, the collapse alarm, and
optionally gate weights per segment of a column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtrec.analysis.collapse import CollapseAlarm, CollapseThresholds, check_collapse
from mtrec.analysis.gate_stats import divergence_matrix, summarize_gates
from mtrec.analysis.segments import gates_by_segment, segment_column, segment_labels
from mtrec.errors import ConfigError
from mtrec.training.gates import GateLevel, collect_gates
from mtrec.utils.atomic import write_json
from mtrec.utils.tables import markdown_table


@dataclasses.dataclass
class GateAnalysis:
    """Everything `analyze_gates` found, per level.

    Attributes:
        levels: the gates, grouped by level.
        summaries: {level: `summarize_gates` table}.
        divergence: {level: task x task Jensen-Shannon divergence}.
        alarms: one collapse alarm per level.
        segments: `gates_by_segment` table per level (empty without `by`).
        segment_column: the column segmented by, if any.
    """

    levels: list[GateLevel]
    summaries: dict[str, pd.DataFrame]
    divergence: dict[str, pd.DataFrame]
    alarms: list[CollapseAlarm]
    segments: dict[str, pd.DataFrame]
    segment_column: str | None = None

    @property
    def rows(self) -> int:
        """Examples the gates were computed on."""
        return len(next(iter(self.levels[0].gates.values())))

    @property
    def collapsed(self) -> bool:
        """Whether the alarm fired on any level."""
        return any(alarm.fired for alarm in self.alarms)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for `gates.json`."""
        levels = []
        for level, alarm in zip(self.levels, self.alarms):
            name = level.level
            util = {g: dict(zip(level.experts[g], v.mean(axis=0).tolist())) for g, v in level.gates.items()}
            levels.append({
                "level": name,
                "experts": level.experts,
                "utilization": util,
                "summary": self.summaries[name].to_dict(orient="index"),
                "divergence": self.divergence[name].to_dict(),
                "collapse": alarm.to_dict(),
                "segments": (self.segments[name].to_dict(orient="records") if name in self.segments else None),
            })
        return {"rows": self.rows, "segment_column": self.segment_column,
                "collapsed": self.collapsed, "levels": levels}

    def to_text(self) -> str:
        """Markdown tables per level: summary, utilization, alarm."""
        parts = []
        for level, alarm in zip(self.levels, self.alarms):
            title = f"level {level.level}" if level.level else "gates"
            summary = self.summaries[level.level].reset_index(names="gate")
            summary["top_expert"] = [level.experts[g][i] for g, i in zip(summary["gate"], summary["top_expert"])]
            parts += [f"## {title} ({self.rows:,} rows)", "", markdown_table(summary.to_dict("records")), ""]
            util = [{"gate": g, **dict(zip(level.experts[g], v.mean(axis=0).tolist()))}
                    for g, v in level.gates.items()]
            parts += ["Expert utilization (mean gate weight):", "",
                      markdown_table(util, columns=["gate", *level.all_experts], digits=3), ""]
            divergence = self.divergence[level.level]
            if len(divergence) > 1:
                parts += ["Jensen-Shannon divergence between the tasks' gates (0: same routing; "
                          "at most log 2 = 0.693):", "",
                          markdown_table(divergence.reset_index(names="gate").to_dict("records")), ""]
            verdict = "FIRED: " + "; ".join(alarm.reasons) if alarm.fired else "quiet"
            parts += [f"Collapse alarm: {verdict}", ""]
        return "\n".join(parts)


def analyze_gates(
    model: Any,
    features: Mapping[str, np.ndarray],
    segments: pd.Series | None = None,
    thresholds: CollapseThresholds | None = None,
    batch_size: int = 8192,
    segment_name: str | None = None,
) -> GateAnalysis:
    """Gate statistics, divergences, collapse alarms (and segments) of a model on encoded rows.

    Args:
        model: a gated model.
        features: encoded inputs.
        segments: one segment label per row (`segment_labels`), optional.
        thresholds: of the collapse alarm.
        batch_size: rows per forward pass.
        segment_name: the segmented column's name, for the report.

    Raises:
        TypeError: the model has no gates.
    """
    levels = collect_gates(model, features, batch_size)
    summaries = {lv.level: summarize_gates(lv.gates) for lv in levels}
    divergence = {lv.level: divergence_matrix(lv.task_gates) for lv in levels}
    alarms = [check_collapse(lv, thresholds) for lv in levels]
    by_segment = {}
    if segments is not None:
        by_segment = {lv.level: gates_by_segment(lv.gates, segments, lv.experts) for lv in levels}
    return GateAnalysis(levels, summaries, divergence, alarms, by_segment, segment_name)


def analyze_run_gates(
    run: Any,
    data: str | Path | pd.DataFrame,
    by: str | None = None,
    bins: int = 5,
    max_rows: int | None = 50_000,
    seed: int = 0,
    thresholds: CollapseThresholds | None = None,
) -> GateAnalysis:
    """`analyze_gates` for a run directory (or loaded run) on a Parquet/CSV file or DataFrame.

    Args:
        run: a run directory or a `TrainedRun`.
        data: rows with the training features (labels are not needed).
        by: a column to segment the gates by (categories, or `bins` quantile
            buckets of a many-valued numeric column).
        bins: quantile buckets of a numeric `by` column.
        max_rows: sample at most this many rows (seeded), for speed; None for all.
        seed: of the row sample.
        thresholds: of the collapse alarm.

    Raises:
        DataError: not a finished run directory, or an unreadable data file.
        SchemaError: a feature column or the `by` column is missing.
        ConfigError: the run's model has no gates.
    """
    from mtrec.data.io import read_table
    from mtrec.training.trained_run import TrainedRun, load_run

    run = run if isinstance(run, TrainedRun) else load_run(run)
    if not getattr(run.model, "gated", False):
        raise ConfigError(f"The run's model ({type(run.model).__name__}) has no gates; gate analysis "
                        "needs MMoE, OMoE, CGC or PLE.")
    source = str(data) if not isinstance(data, pd.DataFrame) else "the data"
    frame = data if isinstance(data, pd.DataFrame) else read_table(data, na_values=run.config.data.na_values)
    if max_rows is not None and len(frame) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(frame), max_rows, replace=False))
        frame = frame.iloc[rows].reset_index(drop=True)
    segments = segment_labels(segment_column(frame, by, source), bins=bins) if by else None
    features = run.encoder.transform(frame, source)
    return analyze_gates(run.model, features, segments, thresholds, segment_name=by)


def write_gate_analysis(analysis: GateAnalysis, out_dir: str | Path) -> list[Path]:
    """Writes `gates.json` and PNG plots per level into `out_dir`.

    Plots: `utilization[_<level>].png` (task x expert heatmap),
    `entropy[_<level>].png` (per-example entropy histograms) and, with
    segments, `segments[_<level>]_<gate>.png`.

    Returns:
        The paths written.
    """
    from mtrec.analysis.plots import (
        plot_entropy_histograms, plot_segment_heatmap, plot_utilization, save_figure,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "gates.json"]
    write_json(written[0], analysis.to_dict())
    for level, alarm in zip(analysis.levels, analysis.alarms):
        suffix = f"_{level.level}" if level.level else ""
        label = f" ({level.level})" if level.level else ""
        status = " - COLLAPSE ALARM" if alarm.fired else ""
        written.append(save_figure(plot_utilization(level, f"Expert utilization{label}{status}"),
                                   out / f"utilization{suffix}.png"))
        written.append(save_figure(plot_entropy_histograms(level.gates), out / f"entropy{suffix}.png"))
        if level.level in analysis.segments:
            table = analysis.segments[level.level]
            for gate in level.gates:
                fig = plot_segment_heatmap(table, gate, column=analysis.segment_column or "segment")
                written.append(save_figure(fig, out / f"segments{suffix}_{gate}.png"))
    return written

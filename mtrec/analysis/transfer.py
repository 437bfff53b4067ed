"""The transfer report: did multi-task learning help or hurt each task against the SingleTask baseline?

For each task `t` with metric `M` (AUC, accuracy, RMSE, ...), the relative
gain of the multi-task model over the single-task one, in percent, is

    gain_t = (-1)^l_t * (M_mtl,t - M_st,t) / M_st,t * 100

with `l_t = 1` when lower is better for the metric (RMSE, log loss) and 0
otherwise, so a positive gain always means the multi-task model is better.
The average over the T tasks is the Δm of Maninis et al. (CVPR 2019), as
LibMTL reports it:

    Δm = (1/T) * Σ_t gain_t

A task with a gain below `-tolerance` is flagged as negative transfer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mtrec.errors import DataError
from mtrec.utils.config_file import read_config_file
from mtrec.utils.tables import markdown_table
from mtrec.utils.validation import closest

#: Metrics where a smaller value is better.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "logloss", "crossentropy", "loss"})
#: Metrics where a larger value is better (rank_ic: the S&P 500 pipeline's daily rank correlation).
HIGHER_IS_BETTER = frozenset({"auc", "accuracy", "r2", "rank_ic"})
#: The default metric of a task: the first of these its report has.
PRIMARY_METRICS = ("auc", "accuracy", "rmse")


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of `metric` are better.

    Raises:
        DataError: the metric's direction is unknown.
    """
    if metric in LOWER_IS_BETTER:
        return True
    if metric in HIGHER_IS_BETTER:
        return False
    raise DataError(f"Unknown direction for metric '{metric}'. Known metrics: "
                    f"{sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER)}.")


def relative_gain(multi_task: float, single_task: float, lower_better: bool) -> float:
    """`(-1)^l (M_mtl - M_st) / M_st * 100`: positive when the multi-task model is better.

    Raises:
        DataError: the single-task value is 0 (no relative gain exists).
    """
    if single_task == 0:
        raise DataError("The single-task metric is 0; a relative gain is undefined.")
    sign = -1.0 if lower_better else 1.0
    return sign * (multi_task - single_task) / single_task * 100.0


@dataclasses.dataclass
class TransferRow:
    """One task of the transfer report (gain in percent)."""

    task: str
    metric: str
    lower_is_better: bool
    multi_task: float
    single_task: float
    gain: float
    negative_transfer: bool


@dataclasses.dataclass
class TransferReport:
    """Per-task gains and their mean Δm (percent).

    Attributes:
        rows: one TransferRow per task.
        delta_m: the mean gain over tasks.
        split: the report split compared (normally "test").
        tolerance: gains below `-tolerance` are negative transfer.
    """

    rows: list[TransferRow]
    delta_m: float
    split: str = "test"
    tolerance: float = 0.0

    @property
    def negative_tasks(self) -> list[str]:
        """Tasks the multi-task model made worse."""
        return [r.task for r in self.rows if r.negative_transfer]

    def to_frame(self) -> pd.DataFrame:
        """One row per task."""
        return pd.DataFrame([dataclasses.asdict(r) for r in self.rows]).set_index("task")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return {"split": self.split, "delta_m": self.delta_m, "tolerance": self.tolerance,
                "negative_transfer": self.negative_tasks,
                "tasks": [dataclasses.asdict(r) for r in self.rows]}

    def to_markdown(self) -> str:
        """The report as a Markdown table plus the Δm line."""
        table = markdown_table([
            {"task": r.task, "metric": r.metric + (" (lower is better)" if r.lower_is_better else ""),
             "multi-task": r.multi_task, "single-task": r.single_task,
             "gain %": f"{r.gain:+.2f}", "negative transfer": "yes" if r.negative_transfer else ""}
            for r in self.rows])
        flagged = ", ".join(self.negative_tasks) or "none"
        return f"{table}\n\nΔm = {self.delta_m:+.2f}% over {len(self.rows)} tasks; negative transfer: {flagged}"


def _metric_for(task: str, entry: Mapping[str, Any], metrics: str | Mapping[str, str] | None) -> str:
    if isinstance(metrics, str):
        return metrics
    if isinstance(metrics, Mapping) and task in metrics:
        return metrics[task]
    for name in PRIMARY_METRICS:
        if name in entry:
            return name
    raise DataError(f"Task '{task}' has none of the default metrics {list(PRIMARY_METRICS)} "
                    f"in its report; choose one of {sorted(k for k in entry if k != 'constant_baseline')}.")


def transfer_report(
    multi_task: Mapping[str, Any],
    single_task: Mapping[str, Any],
    split: str = "test",
    metrics: str | Mapping[str, str] | None = None,
    tasks: Sequence[str] | None = None,
    tolerance: float = 0.0,
) -> TransferReport:
    """Compares two run reports (`report.json` contents) task by task.

    Args:
        multi_task: the multi-task run's report.
        single_task: the SingleTask baseline's report.
        split: which split's metrics to compare.
        metrics: one metric for every task, or {task: metric}; by default
            each task's first of `PRIMARY_METRICS` (AUC, accuracy, RMSE).
        tasks: tasks to compare (default: every task of the multi-task report).
        tolerance: a gain (percent) below `-tolerance` is negative transfer.

    Returns:
        A TransferReport with per-task gains and Δm.

    Raises:
        DataError: a report lacks the split, a task or a metric.
    """
    for name, report in (("multi-task", multi_task), ("single-task", single_task)):
        if split not in report:
            raise DataError(f"The {name} report has no '{split}' split; it has {sorted(report)}.")
    mtl, st = multi_task[split], single_task[split]
    tasks = list(tasks) if tasks is not None else list(mtl)
    rows = []
    for task in tasks:
        for name, part in (("multi-task", mtl), ("single-task", st)):
            if task not in part:
                raise DataError(f"Task '{task}' is missing from the {name} report's '{split}' split."
                                f"{closest(task, part)} Tasks there: {sorted(part)}")
        metric = _metric_for(task, mtl[task], metrics)
        for name, part in (("multi-task", mtl), ("single-task", st)):
            if metric not in part[task]:
                raise DataError(f"Metric '{metric}' of task '{task}' is missing from the {name} report."
                                f"{closest(metric, part[task])}")
        lower = lower_is_better(metric)
        m, s = float(mtl[task][metric]), float(st[task][metric])
        gain = relative_gain(m, s, lower)
        rows.append(TransferRow(task, metric, lower, m, s, gain, gain < -tolerance))
    if not rows:
        raise DataError("No tasks to compare.")
    delta_m = sum(r.gain for r in rows) / len(rows)
    return TransferReport(rows, delta_m, split, tolerance)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path} not found: is {path.parent} a finished run directory?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON: {err}") from err


def main_tasks(run_dir: str | Path) -> list[str] | None:
    """The run's non-auxiliary tasks from its `config.yaml` (None without one)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    config = read_config_file(path)
    return [t["name"] for t in config.get("tasks", []) if not t.get("auxiliary", False)]


def merge_reports(reports: Sequence[Mapping[str, Any]], split: str = "test") -> dict[str, Any]:
    """Merges single-task reports of different tasks (e.g. one run per task) into one.

    Raises:
        DataError: a task appears in two reports.
    """
    merged: dict[str, Any] = {split: {}}
    for report in reports:
        for task, entry in report.get(split, {}).items():
            if task in merged[split]:
                raise DataError(f"Task '{task}' appears in more than one single-task report.")
            merged[split][task] = entry
    return merged


def transfer_between_runs(
    multi_task_dir: str | Path,
    single_task_dirs: str | Path | Sequence[str | Path],
    split: str = "test",
    metrics: str | Mapping[str, str] | None = None,
    tolerance: float = 0.0,
) -> TransferReport:
    """`transfer_report` on run directories' `report.json` files.

    Auxiliary tasks of the multi-task run (from its `config.yaml`) are left
    out. Several single-task directories (one run per task) are merged.

    Raises:
        DataError: a directory lacks `report.json`, or a task or metric is missing.
    """
    if isinstance(single_task_dirs, (str, Path)):
        single_task_dirs = [single_task_dirs]
    mtl = _read_json(Path(multi_task_dir) / "report.json")
    st = merge_reports([_read_json(Path(d) / "report.json") for d in single_task_dirs], split)
    tasks = main_tasks(multi_task_dir)
    if tasks is not None and split in mtl:
        tasks = [t for t in mtl[split] if t in tasks]
    return transfer_report(mtl, st, split=split, metrics=metrics, tasks=tasks, tolerance=tolerance)

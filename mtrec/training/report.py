"""The run report as Markdown: per split, per task, each metric beside the constant baseline's."""

from __future__ import annotations

from typing import Any

from mtrec.utils.tables import markdown_table


def report_rows(split_report: dict[str, Any]) -> list[dict[str, Any]]:
    """Flattens `{task: {metric: value, constant_baseline: {...}}}` into table rows."""
    rows = []
    for task, metrics in split_report.items():
        baseline = metrics.get("constant_baseline", {})
        for metric, value in metrics.items():
            if metric in ("constant_baseline", "count", "positive_rate"):
                continue
            rows.append({"task": task, "metric": metric, "value": value,
                         "constant baseline": baseline.get(metric), "rows": metrics.get("count")})
    return rows


def format_report(report: dict[str, Any], title: str = "Run report") -> str:
    """Renders a run's `report.json` content as Markdown."""
    parts = [f"# {title}", ""]
    rows = report.get("rows")
    if rows:
        parts += ["Rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()), ""]
    for split in ("test", "valid"):
        if split in report:
            parts += [f"## {split}", "", markdown_table(report_rows(report[split])), ""]
    return "\n".join(parts)

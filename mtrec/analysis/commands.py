"""What the `mtrec gates` and `mtrec transfer` commands do, callable from Python too."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mtrec.analysis.collapse import CollapseThresholds
from mtrec.analysis.gate_report import GateAnalysis, analyze_run_gates, write_gate_analysis
from mtrec.analysis.transfer import TransferReport, transfer_between_runs
from mtrec.utils.atomic import write_json
from mtrec.utils.tables import markdown_table


def gates_command(
    run_dir: str | Path,
    data: str | Path,
    by: str | None = None,
    out: str | Path | None = None,
    bins: int = 5,
    max_rows: int | None = 50_000,
    thresholds: CollapseThresholds | None = None,
) -> tuple[GateAnalysis, str, list[Path]]:
    """Analyzes a run's gates on a data file and writes `gates.json` and PNG plots.

    Args:
        run_dir: a finished run directory of a gated model.
        data: Parquet/CSV rows with the training features.
        by: optional column to segment the gates by.
        out: output folder; defaults to `<run_dir>/gates`.
        bins: quantile buckets of a numeric `by` column.
        max_rows: rows sampled from `data` (None: all).
        thresholds: of the collapse alarm.

    Returns:
        (the analysis, the printed text, the files written).
    """
    analysis = analyze_run_gates(run_dir, data, by=by, bins=bins, max_rows=max_rows,
                                 thresholds=thresholds)
    out = Path(out) if out else Path(run_dir) / "gates"
    written = write_gate_analysis(analysis, out)
    text = analysis.to_text()
    if analysis.segment_column:
        for level in analysis.levels:
            table = analysis.segments[level.level]
            where = f" ({level.level})" if level.level else ""
            text += f"\nGate entropy by {analysis.segment_column}{where}:\n\n"
            text += markdown_table(table[["gate", "segment", "rows", "entropy"]].to_dict("records")) + "\n"
    return analysis, text, written


def transfer_command(
    multi_task_dir: str | Path,
    single_task_dirs: Sequence[str | Path],
    out: str | Path | None = None,
    split: str = "test",
    metric: str | None = None,
    tolerance: float = 0.0,
) -> tuple[TransferReport, str, list[Path]]:
    """Compares a multi-task run with SingleTask run(s); writes `transfer.json` and `transfer.png`.

    Args:
        multi_task_dir: the multi-task run directory.
        single_task_dirs: the SingleTask run directory (or one per task).
        out: output folder; defaults to `<multi_task_dir>/transfer`.
        split: report split to compare.
        metric: one metric for every task (default: AUC, accuracy or RMSE per task).
        tolerance: gains (percent) below `-tolerance` are flagged.

    Returns:
        (the report, the printed text, the files written).
    """
    from mtrec.analysis.plots import plot_transfer, save_figure

    report = transfer_between_runs(multi_task_dir, single_task_dirs, split=split, metrics=metric,
                                   tolerance=tolerance)
    out = Path(out) if out else Path(multi_task_dir) / "transfer"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "transfer.json", {**report.to_dict(), "multi_task_run": str(multi_task_dir),
                                       "single_task_runs": [str(d) for d in single_task_dirs]})
    png = save_figure(plot_transfer(report), out / "transfer.png")
    return report, report.to_markdown(), [out / "transfer.json", png]

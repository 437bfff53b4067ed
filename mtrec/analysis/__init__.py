"""Gate and task-relationship analysis.

- gates: `analyze_gates` / `analyze_run_gates` (utilization, entropy,
  effective experts, divergence between tasks, segments) and the expert
  collapse alarm (`check_collapse`, `CollapseThresholds`);
- during training: `GateStatsLogger`, `GradientCosineLogger`
  (config `training.analysis`; they live in `mtrec.training.analysis_loggers`);
- task relationships: `label_correlation`, `training_label_correlation`;
- transfer: `transfer_report`, `transfer_between_runs` (per-task gain over
  the SingleTask baseline and Δm);
- plots: `mtrec.analysis.plots` (matplotlib figures);
- the MMoE paper's correlation study: `python -m mtrec.analysis.correlation_sweep`.
"""

from mtrec.analysis.collapse import CollapseAlarm, CollapseThresholds, check_collapse, saturate_gates
from mtrec.analysis.gate_report import GateAnalysis, analyze_gates, analyze_run_gates, write_gate_analysis
from mtrec.analysis.gate_stats import (
    divergence_matrix, effective_experts, effective_experts_used, expert_utilization, gate_divergence,
    gate_entropy, js_divergence, summarize_gates,
)
from mtrec.analysis.relationships import correlation_matrix, label_correlation, training_label_correlation
from mtrec.analysis.segments import gates_by_segment, segment_labels
from mtrec.analysis.transfer import TransferReport, transfer_between_runs, transfer_report
from mtrec.training.analysis_loggers import GateStatsLogger, GradientCosineLogger, gradient_cosines
from mtrec.training.gates import GateLevel, collect_gates, group_gates

__all__ = [
    "GateStatsLogger", "GradientCosineLogger", "gradient_cosines",
    "CollapseAlarm", "CollapseThresholds", "check_collapse", "saturate_gates",
    "GateLevel", "collect_gates", "group_gates",
    "GateAnalysis", "analyze_gates", "analyze_run_gates", "write_gate_analysis",
    "divergence_matrix", "effective_experts", "effective_experts_used", "expert_utilization",
    "gate_divergence", "gate_entropy", "js_divergence", "summarize_gates",
    "correlation_matrix", "label_correlation", "training_label_correlation",
    "gates_by_segment", "segment_labels",
    "TransferReport", "transfer_between_runs", "transfer_report",
]

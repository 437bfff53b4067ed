"""Batch scoring of trained runs."""

from mtrec.scoring.score import ScoreSummary, predict_arrays, score_file, score_frame

__all__ = ["ScoreSummary", "predict_arrays", "score_file", "score_frame"]

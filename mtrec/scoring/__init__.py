"""Batch scoring of trained runs (predictions through `mtrec.training.predict.predict_arrays`)."""

from mtrec.scoring.score import ScoreSummary, score_file, score_frame
from mtrec.training.predict import predict_arrays

__all__ = ["ScoreSummary", "predict_arrays", "score_file", "score_frame"]

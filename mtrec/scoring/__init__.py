"""Batch scoring of trained runs (predictions through `mtrec.training.predict.predict_arrays`).

`score_file`: one table in, one Parquet file out. `score_folder`: a folder of
shards in, one output shard per input shard, restartable.
"""

from mtrec.scoring.score import ScoreSummary, score_file, score_frame
from mtrec.scoring.shards import FolderScoreSummary, score_folder
from mtrec.training.predict import predict_arrays

__all__ = ["FolderScoreSummary", "ScoreSummary", "predict_arrays", "score_file", "score_folder", "score_frame"]

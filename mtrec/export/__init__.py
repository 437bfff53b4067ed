"""Serving artifacts: a finished run as one TensorFlow SavedModel from raw columns to every task's score.

`mtrec export RUN_DIR OUT_DIR` (or `export_run`) writes it; `GraphEncoder`
is the fitted feature encoder as TensorFlow ops (vocabulary lookups, the
Python encoder's hash, numeric statistics), so a client sends raw columns
and loads the model with plain `tf.saved_model.load`.
"""

from mtrec.export.graph_encoder import GraphEncoder
from mtrec.export.requests import request_columns
from mtrec.export.saved_model import BATCH_ENDPOINT, MANIFEST, ExportSummary, export_run, read_blend

__all__ = ["BATCH_ENDPOINT", "MANIFEST", "ExportSummary", "GraphEncoder", "export_run", "read_blend",
           "request_columns"]

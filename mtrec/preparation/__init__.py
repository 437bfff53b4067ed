"""mtrec.preparation: tables larger than memory to encoded, model-ready shards (`mtrec prepare`).

Public names:
    prepare: streams the configured input into `<out>/{train,valid,test}/`
        shards, the fitted encoder and `manifest.json`; atomic and restartable.
    read_prepared: the manifest and fitted encoder of a prepared folder.
    save_encoder, load_encoder: the fitted encoder with vocabularies as Parquet.
"""

from mtrec.preparation.streaming import PrepareResult, prepare, read_prepared
from mtrec.preparation.state import load_encoder, save_encoder

__all__ = ["PrepareResult", "load_encoder", "prepare", "read_prepared", "save_encoder"]

"""mtrec.preparation: tables larger than memory to encoded, model-ready shards (`mtrec prepare`).

Public names:
    prepare: streams the configured input into `<out>/{train,valid,test}/`
        shards, the fitted encoder and `manifest.json`; atomic and restartable.
    read_prepared: the manifest and fitted encoder of a prepared folder.
    prepared_dataset: one split's shards as a shuffled, batched `tf.data`
        input for Keras (`iter_prepared_batches`: the same batches as numpy).
    save_encoder, load_encoder: the fitted encoder with vocabularies as Parquet.
"""

from mtrec.preparation.streaming import PrepareResult, prepare, read_prepared
from mtrec.preparation.reader import iter_prepared_batches, prepared_dataset
from mtrec.preparation.state import load_encoder, save_encoder

__all__ = ["PrepareResult", "iter_prepared_batches", "load_encoder", "prepare", "prepared_dataset",
           "read_prepared", "save_encoder"]

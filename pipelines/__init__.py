"""Batch pipelines on real data sets: prepare -> train -> evaluate, each skipped when current.

A pipeline is a YAML config naming its table, a base mtrec experiment, the
models to compare (always including the SingleTask baseline) and the seeds.
The table is your own file (`experiment.data.path`: `mtrec pipeline -c
my.yaml`, no code) or a shipped data set read by its loader (`dataset:`, the
configs `configs/pipeline_<name>.yaml`, package data `mtrec.configs`:
`mtrec pipeline NAME`). From Python::

    from mtrec.pipelines import config_path, load_pipeline_config, run_pipeline
    config = load_pipeline_config(config_path("census", quick=True))  # or your own YAML's path
    results = run_pipeline(config)            # {"prepare": ..., "train": ..., "evaluate": ...}

Modules: `config` (the typed config), `prepare`, `train`, `evaluate` (the
three steps), `gbdt` (the per-task LightGBM baseline), `stamps` (staleness
fingerprints), `datasets` (where the table comes from: a path or a data set's
loader hook, and per-data-set metrics), `runner`.
"""

from mtrec.pipelines.config import PipelineConfig, config_path, load_pipeline_config, parse_pipeline_config
from mtrec.pipelines.runner import STEPS, run_pipeline

__all__ = ["PipelineConfig", "STEPS", "config_path", "load_pipeline_config", "parse_pipeline_config",
           "run_pipeline"]

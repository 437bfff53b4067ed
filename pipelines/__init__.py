"""Batch pipelines on real data sets: prepare -> train -> evaluate, each skipped when current.

A pipeline is a YAML config (`configs/pipeline_<name>.yaml`, shipped as the
package data `mtrec.configs`) naming a data set folder, a base mtrec
experiment, the models to compare (always including the SingleTask baseline)
and the seeds. Run it with `mtrec pipeline NAME` or::

    from mtrec.pipelines import config_path, load_pipeline_config, run_pipeline
    config = load_pipeline_config(config_path("census", quick=True))  # or your own YAML's path
    results = run_pipeline(config)            # {"prepare": ..., "train": ..., "evaluate": ...}

Modules: `config` (the typed config), `prepare`, `train`, `evaluate` (the
three steps), `gbdt` (the per-task LightGBM baseline), `stamps` (staleness
fingerprints), `datasets` (loaders and per-data-set hooks), `runner`.
"""

from mtrec.pipelines.config import PipelineConfig, config_path, load_pipeline_config, parse_pipeline_config
from mtrec.pipelines.runner import STEPS, run_pipeline

__all__ = ["PipelineConfig", "STEPS", "config_path", "load_pipeline_config", "parse_pipeline_config",
           "run_pipeline"]

"""Batch pipelines on real data sets: prepare -> train -> evaluate, each skipped when current.

A pipeline is a YAML config (`configs/pipeline_<name>.yaml`) naming a data set
folder, a base mtrec experiment, the models to compare (always including the
SingleTask baseline) and the seeds. Run it with `mtrec pipeline NAME` or::

    from pipelines import load_pipeline_config, run_pipeline
    config = load_pipeline_config("configs/pipeline_census_quick.yaml")
    results = run_pipeline(config)            # {"prepare": ..., "train": ..., "evaluate": ...}

Modules: `config` (the typed config), `prepare`, `train`, `evaluate` (the
three steps), `gbdt` (the per-task LightGBM baseline), `stamps` (staleness
fingerprints), `datasets` (loaders and per-data-set hooks), `runner`.
"""

from pipelines.config import PipelineConfig, config_path, load_pipeline_config, parse_pipeline_config
from pipelines.runner import STEPS, run_pipeline

__all__ = ["PipelineConfig", "STEPS", "config_path", "load_pipeline_config", "parse_pipeline_config",
           "run_pipeline"]

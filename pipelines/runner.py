"""Runs a pipeline's steps in order, each skipped when its outputs are current.

    mtrec pipeline census                        # prepare, train, evaluate
    mtrec pipeline census --step prepare         # one step alone
    mtrec pipeline census --quick                # configs/pipeline_census_quick.yaml
    mtrec pipeline census -c my.yaml seeds=[1] experiment.training.epochs=5
    mtrec pipeline census --force                # rerun even current steps
    mtrec pipeline -c my_table.yaml              # your own table (experiment.data.path), no NAME
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mtrec.errors import ConfigError
from mtrec.pipelines.config import CONFIG_DIR, PipelineConfig, config_path, load_pipeline_config
from mtrec.pipelines.datasets import resolve_data_dir
from mtrec.pipelines.evaluate import run_evaluate
from mtrec.pipelines.prepare import prepare_fingerprint, run_prepare
from mtrec.pipelines.train import check_prepared, run_train

STEPS = ("prepare", "train", "evaluate")


def run_pipeline(config: PipelineConfig, steps: tuple[str, ...] = STEPS, force: bool = False,
                 data_dir: str | Path | None = None, progress: bool = True,
                 echo: Any = print) -> dict[str, Any]:
    """Runs the given steps of a pipeline.

    Args:
        config: the pipeline.
        steps: which of `STEPS` to run (in their order).
        force: rerun steps even when their outputs are current.
        data_dir: the data sets folder (default: `config.data_dir`, else the
            loaders' default).
        progress: show progress bars.
        echo: where step summaries go (`print`; `None` for silence).

    Returns:
        `{step: its result}` (the manifest, the run summaries, the evaluation).

    Raises:
        MtrecError: bad config, missing or bad data, a missing earlier step.
    """
    say = echo or (lambda *_: None)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"Unknown step(s) {unknown}; steps: {list(STEPS)}")
    # Only a loader reads the data sets folder; a table named by data.path needs none.
    data_dir = resolve_data_dir(data_dir or config.data_dir) if not config.data_path else Path(data_dir or ".")
    data_fp = prepare_fingerprint(config, data_dir)
    results: dict[str, Any] = {}
    started = time.perf_counter()
    if "prepare" in steps:
        manifest = run_prepare(config, data_dir, force=force, progress=progress)
        results["prepare"] = manifest
        sizes = ", ".join(f"{k} {v['rows']:,}" for k, v in manifest.get("splits", {}).items())
        say(f"[{config.name}] prepare: {'current, skipped' if manifest['skipped'] else 'done'} "
            f"({sizes}) -> {config.out / 'data'}")
    else:
        check_prepared(config, data_fp)
    if "train" in steps:
        summaries = run_train(config, data_fp, force=force, progress=progress)
        results["train"] = summaries
        skipped = sum(bool(s.get("skipped")) for s in summaries)
        say(f"[{config.name}] train: {len(summaries) - skipped} run(s) trained, {skipped} current "
            f"-> {config.out / 'runs'}")
    if "evaluate" in steps:
        evaluation = run_evaluate(config, data_fp, force=force)
        results["evaluate"] = evaluation
        say(f"[{config.name}] evaluate: {'current, skipped' if evaluation['skipped'] else 'done'} "
            f"-> {config.out / 'evaluation.md'}")
    results["seconds"] = round(time.perf_counter() - started, 2)
    return results


def run_from_cli(name: str | None, config: str | None, quick: bool, step: str, force: bool,
                 data_dir: str | None, out: str | None, overrides: list[str]) -> int:
    """The `mtrec pipeline` command: loads the config, runs the steps, prints the report.

    Raises:
        ConfigError: neither a NAME nor `-c CONFIG`.
    """
    if not name and not config:
        raise ConfigError("Give a shipped pipeline's NAME or your own config with -c CONFIG. Shipped: "
                          f"{sorted(p.stem.removeprefix('pipeline_') for p in CONFIG_DIR.glob('pipeline_*.yaml'))}")
    path = Path(config) if config else config_path(name, quick=quick)
    if out:
        overrides = [*overrides, f"output_dir={out}"]
    pipeline = load_pipeline_config(path, overrides)
    steps = STEPS if step == "all" else (step,)
    print(f"mtrec pipeline {pipeline.name}: {path} -> {pipeline.out}", flush=True)
    results = run_pipeline(pipeline, steps, force=force, data_dir=data_dir)
    if "evaluate" in results:
        print()
        print((pipeline.out / "evaluation.md").read_text().split("\n## All metrics")[0].rstrip())
    print(f"\n{results['seconds']:.1f} s")
    return 0

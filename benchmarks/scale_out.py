"""1 process against 2 on the census quick data: the same global batch and global steps, the same test AUCs.

The census pipeline's quick mode prepares its data (8,000 rows of Census-Income KDD, split
60/20/20; `mtrec pipeline census --quick --step prepare`); its MMoE (4 experts of 16, towers of
8, 3 epochs, batch 512) is then trained on the JAX backend by `mtrec train` in one process and
by `mtrec launch -n 2 -- train` in two (each process feeds half of every global batch of 512
rows, so both take the same number of global steps on the same batches). The test AUCs should
agree within noise (|difference| <= 0.003 per task); the table also shows the wall time of each
(on CPU two processes on one machine share its cores: this checks results, not speed).

With `--streamed`, the rows (the same split: a time split on the pipeline's split column) are
prepared once (`mtrec prepare`) and both runs stream the prepared folder (`training.in_memory: false`): one
process reads every row in global batches of 512, each of two reads only its own half of every
split in batches of 256 (the same global batch, the same number of global steps, other rows in
each step).

Run from the checkout: python -m benchmarks.scale_out [--streamed] [--out bench_results/scale_out.json]
(needs jax: pip install -e '.[jax]', and ../shared/datasets or MTREC_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import argument_parser, machine_info, report
from mtrec.pipelines.config import config_path, load_pipeline_config
from mtrec.pipelines.datasets import resolve_data_dir
from mtrec.pipelines.prepare import run_prepare
from mtrec.pipelines.train import run_experiment, training_frame
from mtrec.data.io import write_parquet

REPO = Path(__file__).resolve().parents[1]
#: Agreement asked of the test AUCs of 1 and 2 processes.
TOLERANCE = 0.003


def experiment_file(work: Path, data_dir: str | None) -> Path:
    """Prepares the census quick data and writes the MMoE run's config (data.path: the prepared rows)."""
    pipeline = load_pipeline_config(config_path("census", quick=True), [f"output_dir={work / 'pipeline'}"])
    run_prepare(pipeline, resolve_data_dir(data_dir), progress=False)
    frame = training_frame(pipeline)
    write_parquet(frame, work / "rows.parquet")
    variant = next(v for v in pipeline.models if v.name == "mmoe")
    experiment = run_experiment(pipeline, variant, pipeline.seeds[0]).get_config()
    experiment["data"]["path"] = str(work / "rows.parquet")
    # On JAX, jit_compile: false would run every step eagerly; both runs compile.
    experiment["training"]["jit_compile"] = True
    path = work / "census_quick_mmoe.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


def run(argv: list[str], run_dir: Path) -> dict[str, Any]:
    """Runs one `mtrec` command line on JAX (CPU); returns its wall seconds and the run's test metrics."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mtrec.cli", *argv, "--run-dir", str(run_dir)], cwd=REPO,
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    report = json.loads((run_dir / "report.json").read_text())
    history = json.loads((run_dir / "metrics.json").read_text())
    return {"seconds": round(seconds, 1), "epochs": len(history), "rows": report["rows"],
            "test": {task: {"auc": m["auc"]} for task, m in report["test"].items()},
            "train_loss": [round(e["train"]["total"]["loss"], 5) for e in history]}


def main() -> None:
    parser = argument_parser("scale_out", __doc__)
    parser.add_argument("--data-dir", help="the data sets folder (default: $MTREC_DATA_DIR or ../shared/datasets)")
    parser.add_argument("--streamed", action="store_true",
                        help="stream a prepared folder; each of 2 processes reads its own half of it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mtrec-scale-out-") as tmp:
        work = Path(tmp)
        config = experiment_file(work, args.data_dir)
        extra: list[str] = []
        if args.streamed:
            done = subprocess.run([sys.executable, "-m", "mtrec.cli", "prepare", "-c", str(config), "--out",
                                   str(work / "prepared")], cwd=REPO, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"mtrec prepare failed:\n{(done.stdout + done.stderr)[-4000:]}")
            extra = [f"data.prepared={work / 'prepared'}", "training.in_memory=false"]
        results = {
            1: run(["train", "-c", str(config), *extra], work / "one"),
            2: run(["launch", "-n", "2", "--", "train", "-c", str(config), *extra], work / "two"),
        }
    tasks = list(results[1]["test"])
    diff = {t: round(results[2]["test"][t]["auc"] - results[1]["test"][t]["auc"], 5) for t in tasks}
    table = [{"processes": n, "wall s": r["seconds"], "epochs": r["epochs"],
              **{f"{t} test AUC": r["test"][t]["auc"] for t in tasks},
              "train loss per epoch": " ".join(f"{v:.4f}" for v in r["train_loss"])} for n, r in results.items()]
    table.append({"processes": "2 - 1", **{f"{t} test AUC": f"{diff[t]:+.4f}" for t in tasks}})
    agree = all(abs(v) <= TOLERANCE for v in diff.values())
    how = "streamed, each process its own half" if args.streamed else "in memory"
    report(f"MMoE on the census quick data (JAX, CPU, {how}): 1 process vs 2; test AUCs agree within "
           f"{TOLERANCE}: {agree}",
           table, {"benchmark": "scale_out", "streamed": args.streamed, "machine": machine_info(),
                   "tolerance": TOLERANCE,
                   "results": {str(k): v for k, v in results.items()}, "difference": diff, "agree": agree},
           args.out)


if __name__ == "__main__":
    main()

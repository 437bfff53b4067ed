"""Streamed training vs in memory: examples/s of an epoch and peak memory, the same model on the same rows.

A synthetic click log (`mtrec.data.click_log`, as in `benchmarks.scale`: 13
numeric columns, 10 Zipf ids up to 1,000,000 values, click, purchase, dwell
time) is written as Parquet shards. Then, each in a fresh subprocess so that
peak memory (`ru_maxrss`) is its own, the MMoE of `benchmarks.scale`
(batches of 1,024) is trained the way `mtrec train` does it (`mtrec.training.streamed.load_training_data`,
then `mtrec.training.run.fit_model`, its core):

- `streamed` (`training.in_memory: false`): `data.path` prepared into encoded
  shards (`RUN_DIR/prepared`), then the training split read through
  `prepared_dataset` (files interleaved, a shuffle buffer of
  `training.shuffle_rows`, batches, prefetch), validation streamed too;
- `in-memory` (`training.in_memory: true`): the table read, split, encoded
  into arrays, fed by `make_dataset`.

Two epochs each; the second epoch's examples/s is the figure (the first
includes tracing); `load s` is the preparation before training.

Example:

```bash
python -m benchmarks.streamed_training                     # 1,000,000 rows, table + bench_results/streamed_training.json
python -m benchmarks.streamed_training --rows 200000
```
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

from benchmarks.harness import argument_parser, click_log_experiment, peak_mb, report

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 2
BATCH_SIZE = 1024


def worker(mode: str, data: str, work: str, shuffle_rows: int) -> dict[str, Any]:
    """Prepares and trains in this process; returns its figures."""
    from benchmarks.harness import EpochTimer
    from mtrec.training.run import fit_model
    from mtrec.training.streamed import load_training_data

    config = click_log_experiment(data, batch_size=BATCH_SIZE, epochs=EPOCHS, early_stopping=None, verbose=0,
                                  in_memory=mode == "in-memory", shuffle_rows=shuffle_rows)
    imported = peak_mb()
    started = time.perf_counter()
    prepared = load_training_data(config, Path(work))
    loaded = time.perf_counter() - started
    timer = EpochTimer()
    fitted = fit_model(config, prepared, callbacks=[timer])
    rows = len(prepared.splits["train"])
    return {"mode": mode, "train_rows": rows, "load_seconds": loaded, "epoch_seconds": timer.seconds,
            "examples_per_s": rows / timer.seconds[-1], "val_loss": fitted.history["val_loss"][-1],
            "peak_mb": peak_mb(), "import_mb": imported}


def measure(mode: str, data: Path, work: Path, shuffle_rows: int) -> dict[str, Any]:
    """`worker` in a fresh subprocess (its own peak memory)."""
    command = [sys.executable, "-m", "benchmarks.streamed_training", "--worker", mode, "--data", str(data),
               "--work", str(work / mode), "--shuffle-rows", str(shuffle_rows)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_benchmark(rows: int, shard_rows: int, shuffle_rows: int) -> dict[str, Any]:
    from benchmarks.harness import machine_info
    from mtrec.data.click_log import write_click_log

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "clicks"
        write_click_log(data, rows, shard_rows=shard_rows)
        for mode in ("streamed", "in-memory"):
            figures = measure(mode, data, Path(tmp), shuffle_rows)
            print({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}, flush=True)
            results.append(figures)
    speed = {r["mode"]: r["examples_per_s"] for r in results}
    return {"rows": rows, "shard_rows": shard_rows, "shuffle_rows": shuffle_rows, "epochs": EPOCHS,
            "results": results, "streamed_over_in_memory": speed["streamed"] / speed["in-memory"],
            "machine": machine_info()}


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("streamed_training", __doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the click log")
    parser.add_argument("--shard-rows", type=int, default=250_000, help="rows per input Parquet shard")
    parser.add_argument("--shuffle-rows", type=int, default=262_144, help="training.shuffle_rows (streamed)")
    parser.add_argument("--worker", choices=["streamed", "in-memory"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.work, args.shuffle_rows)))
        return 0
    result = run_benchmark(args.rows, args.shard_rows, args.shuffle_rows)
    table = [{"path": r["mode"], "train rows": f"{r['train_rows']:,}", "load s": f"{r['load_seconds']:.1f}",
              "epoch s": " / ".join(f"{s:.1f}" for s in r["epoch_seconds"]),
              "examples/s": f"{r['examples_per_s']:,.0f}", "val loss": f"{r['val_loss']:.4f}",
              "peak MB": f"{r['peak_mb']:,.0f}", "work MB": f"{r['peak_mb'] - r['import_mb']:,.0f}"}
             for r in result["results"]]
    title = (f"MMoE on the click log ({args.rows:,} rows, Parquet shards of {args.shard_rows:,}), {EPOCHS} "
             f"epochs, examples/s of the last; streamed / in memory = "
             f"{result['streamed_over_in_memory']:.2f} ({result['machine']['cpus']} CPUs)")
    report(title, table, result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

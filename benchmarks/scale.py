"""Data larger than memory: rows/s and peak memory of `mtrec prepare` beside the in-memory path.

For each size, a synthetic click log (`mtrec.data.click_log`: 13 numeric
columns with 5% missing, 10 Zipf ids of 10 to 1,000,000 values, click,
purchase, dwell time) is written as Parquet shards; then, each in a fresh
subprocess so that peak memory (`ru_maxrss`) is its own:

- `prepare`: the streamed preparation into encoded shards per split
  (`mtrec.preparation.prepare`, two passes over the shards);
- `in-memory`: today's path, `read_table` + split + `FeatureEncoder.fit`
  on train + `transform` of every split (`mtrec.training.prepare.prepare`).

With `--score`, a run is trained once (one epoch of the MMoE below on
50,000 rows of the log) and each size is scored twice:

- `score-folder`: `mtrec score RUN IN_FOLDER OUT_FOLDER`
  (`mtrec.scoring.score_folder`: one output shard per input shard, record
  batches of `scoring.batch_size` rows);
- `score-in-memory`: `read_table` of the whole folder, then `score_frame`.

With `--train`, one more pair: two epochs of MMoE on the training split,
fed from the prepared shards (`mtrec.preparation.prepared_dataset`, shuffle
buffer of 262,144 rows) or from in-memory arrays (`make_dataset`, today's
path); the second epoch's examples/s is reported (the first compiles).

Both use the same `hash` split, so they encode the same rows. `import MB` is
the process's memory after importing mtrec (TensorFlow included, since the
config imports the tasks); the growth above it is the work's own.

Example:

```bash
python -m benchmarks.scale --rows 1000000            # table + bench_results/scale.json
python -m benchmarks.scale --rows 200000 1000000 --skip-in-memory
python -m benchmarks.scale --rows 200000 --train                # + training examples/s
python -m benchmarks.scale --rows 1000000 --score --skip-prepare  # scoring rows/s only
python -m benchmarks.scale --rows 1000000 --skip-in-memory --workers 1 2  # prepare in 1 and 2 processes
```

With `--workers`, prepare and folder scoring are measured once per worker count (`mtrec
prepare --workers N`: forked processes share the input files; `mtrec score --workers N`:
spawned processes score whole shards); the CPU seconds include the workers', and `workers MB`
is the largest worker's peak (a forked worker's resident memory counts the pages it shares
with the driver too, so driver plus workers overstates the total).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import argument_parser, click_log_experiment, peak_mb, report

ROOT = Path(__file__).resolve().parent.parent


TRAIN_BATCH = 1024
#: Rows of the click log the scoring run is trained on.
SCORE_FIT_ROWS = 50_000
SHUFFLE_ROWS = 262_144


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads (TensorFlow's included), and of its
    finished child processes (prepare's workers)."""
    return sum(usage.ru_utime + usage.ru_stime
               for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def _figures(rows: int, seconds: float, cpu: float, imported: float, workers: int) -> dict[str, Any]:
    """One measurement's figures: rows/s, rows per CPU-second (on a shared machine wall time says
    little; CPU seconds are what the work costs), peak memory, and the largest worker's peak."""
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KB on Linux
    return {"seconds": seconds, "rows": rows, "rows_per_s": rows / seconds, "cpu_seconds": cpu,
            "rows_per_cpu_s": rows / cpu, "peak_mb": peak_mb(), "import_mb": imported,
            "workers": workers, "workers_peak_mb": children_mb if workers > 1 else 0.0}


def worker(mode: str, data: str, out: str, batch_size: int, workers: int = 1) -> dict[str, Any]:
    """Runs one measurement in this process and returns its figures."""
    config = click_log_experiment(data, batch_size=TRAIN_BATCH)
    import mtrec.training.prepare  # noqa: F401  (imported before the baseline is taken)

    imported = peak_mb()
    if mode.startswith("train"):
        return train_worker(mode, config, out, batch_size, imported)
    if mode.startswith("score"):
        return score_worker(mode, data, out, batch_size, imported, workers)
    start, cpu = time.perf_counter(), _cpu_seconds()
    if mode == "prepare":
        from mtrec.preparation import prepare

        result = prepare(config, out, batch_size=batch_size, workers=workers)
        rows = result.rows
    else:
        from mtrec.training.prepare import prepare as prepare_in_memory

        prepared = prepare_in_memory(config)
        rows = sum(len(s) for s in prepared.splits.values())
    return _figures(rows, time.perf_counter() - start, _cpu_seconds() - cpu, imported, workers)


def train_worker(mode: str, config: Any, out: str, batch_size: int, imported: float) -> dict[str, Any]:
    """Two epochs of MMoE on the training split, streamed from shards or from arrays."""
    from benchmarks.harness import EpochTimer
    from mtrec.training.run import build_model, compile_model

    if mode == "train-streamed":
        from mtrec.preparation import prepare, prepared_dataset, read_prepared

        prepare(config, out, batch_size=batch_size)
        manifest, encoder = read_prepared(out)
        rows = manifest["splits"]["train"]["rows"]
        data = prepared_dataset(out, "train", TRAIN_BATCH, shuffle_rows=SHUFFLE_ROWS, seed=1)
    else:
        from mtrec.data.tf_dataset import make_dataset
        from mtrec.training.prepare import prepare as prepare_in_memory

        prepared = prepare_in_memory(config)
        encoder, train = prepared.encoder, prepared.splits["train"]
        rows = len(train)
        data = make_dataset(train.features, train.labels, TRAIN_BATCH, shuffle=True, seed=1)
    model = build_model(config, encoder.layout())
    compile_model(model, config)
    timer = EpochTimer()
    model.fit(data, epochs=2, shuffle=False, verbose=0, callbacks=[timer])
    seconds = timer.seconds[-1]
    return {"seconds": seconds, "rows": rows, "rows_per_s": rows / seconds,
            "peak_mb": peak_mb(), "import_mb": imported}


def fit_run(data: str, run_dir: str) -> dict[str, Any]:
    """Trains the run that the scoring modes use: one epoch of MMoE on the click log at `data`."""
    from mtrec.training.run import train

    config = click_log_experiment(data, batch_size=TRAIN_BATCH, epochs=1, verbose=0, early_stopping=None)
    start = time.perf_counter()
    train(config, run_dir)
    return {"seconds": time.perf_counter() - start}


def score_worker(mode: str, data: str, out: str, batch_size: int, imported: float,
                 workers: int = 1) -> dict[str, Any]:
    """Scores the shards at `data` with the run at `RUN_DIR` (env), as a folder or all in memory."""
    import warnings

    from mtrec.training.trained_run import load_run

    run = load_run(os.environ["MTREC_BENCH_RUN"])
    warnings.simplefilter("ignore")  # unseen ids of the Zipf tails
    start, cpu = time.perf_counter(), _cpu_seconds()
    if mode == "score-folder":
        from mtrec.scoring import score_folder

        rows = score_folder(run, data, out, batch_size=batch_size, progress=False, workers=workers).rows
    else:
        from mtrec.data.io import read_table
        from mtrec.scoring import score_frame

        frame = read_table(data, columns=list(dict.fromkeys(run.encoder.input_columns)),
                           na_values=run.config.data.na_values)
        rows = len(score_frame(run, frame, batch_size=batch_size))
    return _figures(rows, time.perf_counter() - start, _cpu_seconds() - cpu, imported, workers)


def measure(mode: str, data: Path, work: Path, batch_size: int, run_dir: Path | None = None,
            workers: int = 1) -> dict[str, Any]:
    """`worker` in a fresh subprocess (its own peak memory)."""
    command = [sys.executable, "-m", "benchmarks.scale", "--worker", mode, "--data", str(data),
               "--work", str(work / f"prepared-{mode}-{workers}"), "--batch-size", str(batch_size),
               "--workers", str(workers)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MTREC_BENCH_RUN": str(run_dir or "")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_benchmark(sizes: list[int], shard_rows: int, batch_size: int, in_memory: bool,
                  train: bool = False, score: bool = False, prepare: bool = True,
                  score_batch: int = 65536, workers: tuple[int, ...] = (1,)) -> dict[str, Any]:
    from mtrec.data.click_log import write_click_log

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        if score:
            write_click_log(Path(tmp) / "fit", SCORE_FIT_ROWS, shard_rows=SCORE_FIT_ROWS, seed=99)
            command = [sys.executable, "-m", "benchmarks.scale", "--fit-run", str(Path(tmp) / "fit"),
                       "--work", str(run_dir)]
            done = subprocess.run(command, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"training the scoring run failed:\n{done.stderr[-4000:]}")
        for rows in sizes:
            data = Path(tmp) / f"clicks-{rows}"
            started = time.perf_counter()
            write_click_log(data, rows, shard_rows=shard_rows)
            generated = time.perf_counter() - started
            modes = ([("prepare", n) for n in workers] + ([("in-memory", 1)] if in_memory else [])) if prepare else []
            modes += [("train-streamed", 1)] + ([("train-in-memory", 1)] if in_memory else []) if train else []
            modes += [("score-folder", n) for n in workers] + ([("score-in-memory", 1)] if in_memory else []) \
                if score else []
            for k, (mode, n) in enumerate(modes):
                # A work folder of its own per measurement: a prepared folder would be reused, not timed.
                figures = measure(mode, data, Path(tmp) / f"work-{rows}-{k}",
                                  score_batch if mode.startswith("score") else batch_size, run_dir, n)
                figures.update(mode=mode if n == 1 else f"{mode} ({n} workers)", input_rows=rows,
                               generate_seconds=generated,
                               load_average=os.getloadavg()[0])  # how shared the machine was
                print({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}, flush=True)
                results.append(figures)
    return {"sizes": sizes, "shard_rows": shard_rows, "batch_size": batch_size, "results": results,
            "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("scale", __doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="sizes of the click log")
    parser.add_argument("--shard-rows", type=int, default=250_000, help="rows per input Parquet shard")
    parser.add_argument("--batch-size", type=int, default=131_072, help="prepare's record batch")
    parser.add_argument("--skip-in-memory", action="store_true", help="measure prepare only")
    parser.add_argument("--train", action="store_true", help="also time MMoE epochs, streamed vs in memory")
    parser.add_argument("--score", action="store_true", help="also time scoring, a folder of shards vs in memory")
    parser.add_argument("--score-batch", type=int, default=65536,
                        help="scoring's record batch and forward pass (scoring.batch_size's default)")
    parser.add_argument("--skip-prepare", action="store_true", help="do not time prepare")
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="prepare's local processes (mtrec prepare --workers); one measurement each")
    parser.add_argument("--worker", choices=["prepare", "in-memory", "train-streamed", "train-in-memory",
                                             "score-folder", "score-in-memory"], help=argparse.SUPPRESS)
    parser.add_argument("--fit-run", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fit_run:
        print(json.dumps(fit_run(args.fit_run, args.work)))
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.work, args.batch_size, args.workers[0])))
        return 0
    result = run_benchmark(args.rows, args.shard_rows, args.batch_size, not args.skip_in_memory, args.train,
                           args.score, not args.skip_prepare, args.score_batch, tuple(args.workers))
    table = [{"rows": f"{r['input_rows']:,}", "path": r["mode"], "seconds": f"{r['seconds']:.1f}",
              "rows/s": f"{r['rows_per_s']:,.0f}",
              "rows/CPU-s": f"{r['rows_per_cpu_s']:,.0f}" if "rows_per_cpu_s" in r else "",
              "peak MB": f"{r['peak_mb']:,.0f}",
              "import MB": f"{r['import_mb']:,.0f}", "work MB": f"{r['peak_mb'] - r['import_mb']:,.0f}",
              "workers MB": f"{r['workers_peak_mb']:,.0f}" if r.get("workers_peak_mb") else ""}
             for r in result["results"]]
    title = (f"Click log (23 feature columns, 3 tasks), Parquet shards of {args.shard_rows:,} rows, "
             f"prepare batch {args.batch_size:,}, scoring batch {args.score_batch:,}, {result['cpus']} CPUs")
    report(title, table, result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

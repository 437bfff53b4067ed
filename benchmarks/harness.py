"""The benchmarks' shared harness: machine info, timing, the reference MMoE, the table and the JSON.

Every benchmark is a module of this package, run from the checkout as
`python -m benchmarks.NAME`; it prints a Markdown table and writes its
measurements as JSON (`--out`, under `bench_results/` by default). The
package is not part of the installed library.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mtrec.config import TrainingConfig
from mtrec.data.synthetic import make_synthetic
from mtrec.models import MMoE
from mtrec.retrieval.legacy import legacy_keras_enabled
from mtrec.tasks import RegressionTask
from mtrec.utils.atomic import write_json
from mtrec.utils.tables import markdown_table


def machine_info() -> dict[str, Any]:
    """CPUs, Python, TensorFlow, and Keras with its backend: what a benchmark's numbers depend on.

    In a Keras 2 process (the retrieval benchmark) Keras 3 is not asked.
    """
    import tensorflow as tf

    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "tensorflow": tf.__version__}
    if not legacy_keras_enabled():
        info.update(keras=keras.__version__, backend=keras.backend.backend())
    return info


class Stopwatch:
    """Wall and process CPU seconds of a block.

    Example:
        >>> with Stopwatch() as clock:
        ...     work()
        >>> clock.wall, clock.cpu
    """

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


class EpochTimer(keras.callbacks.Callback):
    """Records each training epoch's wall seconds in `seconds`."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def synthetic_arrays(rows: int, num_features: int, correlation: float,
                     seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The MMoE paper's two synthetic regression tasks as arrays: `({"numeric": x}, {"y0": .., "y1": ..})`."""
    frame = make_synthetic(rows, num_features=num_features, correlation=correlation, seed=seed)
    x = frame[[f"x{i}" for i in range(num_features)]].to_numpy("float32")
    y = {f"y{t}": frame[f"y{t}"].to_numpy("float32")[:, None] for t in range(2)}
    return {"numeric": x}, y


def reference_mmoe(num_features: int, training: TrainingConfig) -> MMoE:
    """The speed benchmarks' mtrec model, compiled with `training`'s settings.

    MMoE with 8 experts of 16 units and towers of 8 on `num_features` numeric
    inputs, two regression tasks `y0` and `y1`.
    """
    layout = {"numeric_dim": num_features, "tables": {}, "categorical": {}, "multi_categorical": {}}
    model = MMoE([RegressionTask("y0"), RegressionTask("y1")], layout,
                 num_experts=8, expert={"units": [16]}, tower_units=[8])
    model.compile_for_tasks(keras.optimizers.Adam(training.learning_rate),
                            steps_per_execution=training.steps_per_execution,
                            jit_compile=training.jit_compile)
    return model


def run_each(calls: Iterable[tuple[Any, ...]], run: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    """`run(*args, work)` for each `args` of `calls`, in one temporary work folder.

    Each result is printed as it comes (floats to 4 decimals), so a long
    benchmark shows its progress.
    """
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for args in calls:
            results.append(run(*args, Path(tmp)))
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in results[-1].items()}, flush=True)
    return results


def argument_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The parser of `python -m benchmarks.NAME`, with `--out` (default `bench_results/NAME.json`)."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=f"bench_results/{name}.json", help="where the JSON goes")
    return parser


def report(title: str | None, table: list[dict[str, Any]], result: dict[str, Any], out: str | Path,
           digits: int = 4) -> None:
    """Prints the title and the table in Markdown and writes `result` as JSON to `out`."""
    if title:
        print(title)
    print(markdown_table(table, digits=digits))
    write_json(out, result)
    print(f"Wrote {out}")


def latencies(call: Callable[[Any], Any], batches: list, repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of `call`, cycling over `batches`, after one warm-up call."""
    call(batches[0])
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        call(batches[i % len(batches)])
        times.append(time.perf_counter() - started)
    return times


def click_log_experiment(data: str, **training: Any) -> Any:
    """The click-log experiment of the scale benchmarks: 23 feature columns, 3 tasks, MMoE.

    Args:
        data: The click log's file or folder of shards (`benchmarks.click_log`).
        **training: `training:` keys over the defaults (batch 1024, 2 epochs).

    Returns:
        The parsed `ExperimentConfig`.
    """
    from mtrec.config import parse_config

    return parse_config({
        "name": "click_log",
        "data": {"path": data, "split": {"kind": "hash", "fractions": [0.8, 0.1, 0.1], "seed": 1}},
        "features": [{"name": "n*", "kind": "numeric"}]
        + [{"name": f"c{i}", "kind": "categorical", "embedding_dim": 8} for i in range(10)],
        "tasks": [{"name": "click", "kind": "binary"}, {"name": "purchase", "kind": "binary"},
                  {"name": "dwell_time", "kind": "regression"}],
        "model": {"kind": "mmoe", "num_experts": 4},
        "training": {"batch_size": 1024, "epochs": 2, **training},
    })


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

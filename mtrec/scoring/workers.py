"""`mtrec score IN_FOLDER OUT_FOLDER --workers N`: the shards of a folder scored in N processes.

Scoring keeps about one CPU busy (reading and encoding in one thread, the forward pass in
another), so a machine with more CPUs scores a folder faster with several processes, each
scoring whole shards (`shards.score_shard`: the same output, marker and checks as one
process). The workers are spawned, not forked: each imports TensorFlow afresh and loads the
run once, which costs a few seconds, so this pays on folders that take minutes. Each worker's
TensorFlow gets an equal share of the CPUs for its own thread pools, so N workers do not
oversubscribe the machine. A worker exits when the process that started it dies; a rerun then
skips the shards already finished, as after any kill.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a worker imports this module first: nothing here may load TensorFlow
    from mtrec.scoring.score import StreamCounts

#: The run a worker scores with, loaded once by its initializer.
_RUN: Any = None


def _start(run_dir: str, parent: int, threads: int) -> None:
    """A worker's initializer: quiet TensorFlow as the `mtrec` command does, share the CPUs, load the run."""
    global _RUN
    from mtrec.utils.framework_logs import quiet_if_asked
    from mtrec.utils.processes import exit_with_parent

    exit_with_parent(parent)
    quiet_if_asked()
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from mtrec.training.trained_run import load_run

    _RUN = load_run(run_dir)


def _score(item: tuple[Any, ...]) -> StreamCounts:
    from mtrec.scoring.shards import score_shard

    return score_shard(_RUN, *item)


def score_shards(run_dir: Path, items: list[tuple[Any, ...]], workers: int) -> Iterator[StreamCounts]:
    """Scores `items` (`shards.score_shard`'s arguments after the run) in `workers` spawned processes.

    Args:
        run_dir: the run directory each worker loads.
        items: one tuple per shard to score.
        workers: the number of processes (at most one per shard).

    Yields:
        Each shard's `StreamCounts`, as the shards finish (in any order).

    Raises:
        The first error a shard raised; the shards not started are cancelled, the ones being
        scored finish (their outputs are complete and marked: a rerun skips them).
    """
    if not items:
        return
    workers = min(workers, len(items))
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(str(run_dir), os.getpid(), threads))
    try:
        pending = {pool.submit(_score, item) for item in items}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                yield future.result()  # raises the shard's error here
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["score_shards"]

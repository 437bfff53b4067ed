"""`mtrec prepare --workers N`: the per-file work of each pass in N local processes.

The streamed preparation splits its work by input file (`streaming.prepare`): each pass is a
function of one file and the position of its first row, and the driver merges the results in
file order. Python runs one thread's bytecode at a time, so threads over the files gained
nothing (measured: docs/scale.md); processes do. This engine runs that function in a pool of
forked worker processes and returns the results in file order, so it writes the same fitted
state and the same shards as one process, byte for byte in content (as `--engine ray` does,
across a cluster).

Workers are forked, not spawned: they inherit the pass's function (a closure over the config
and, in the encode pass, the fitted encoder) without pickling it, and start in milliseconds
rather than re-importing mtrec. They run pandas, pyarrow and numpy only, never TensorFlow,
which is why forking a process that has imported it is safe here. A worker exits when the
process that started it dies (a kill of `mtrec prepare` leaves no orphans); a rerun then
finishes the job as after any kill.

Example:

```bash
mtrec prepare -c click_log.yaml --out prepared/ --workers 2
```
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from mtrec.errors import ConfigError
from mtrec.utils.processes import exit_with_parent

#: The pass's per-file function, set in the driver before the pool forks (inherited, not pickled).
_FUNCTION: Callable[[int, int], Any] | None = None


def fork_available() -> bool:
    """Whether this platform can fork workers (Linux; not Windows, and not advised on macOS)."""
    return "fork" in multiprocessing.get_all_start_methods() and os.uname().sysname == "Linux"


def check_workers(workers: Any) -> int:
    """`workers` as a positive int.

    Raises:
        ConfigError: not a positive integer, or more than one worker where processes cannot be forked.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer. Received: {workers!r}")
    if workers > 1 and not fork_available():
        raise ConfigError(f"--workers {workers} forks worker processes, which this platform does not do; "
                          "use --workers 1 or --engine ray.")
    return workers


def _call(item: tuple[int, int]) -> Any:
    assert _FUNCTION is not None, "the pass's function is set before the pool forks"
    return _FUNCTION(*item)


def map_files(function: Callable[[int, int], Any], items: list[tuple[int, int]], workers: int) -> Iterator[Any]:
    """`function(i, start)` for every `(i, start)` item in `workers` forked processes, results in item order.

    Args:
        function: the per-file work of a pass.
        items: `(file index, position of the file's first row)`.
        workers: the number of processes (at most one per item).

    Yields:
        The results (pickled back from the workers), in the order of `items`, each as soon as
        it and those before it are done (the caller merges them as they come).

    Raises:
        Whatever `function` raised for the first failing item, in the driver; the items not
        started yet are then cancelled.
    """
    global _FUNCTION
    if workers <= 1 or len(items) <= 1:
        for i, start in items:
            yield function(i, start)
        return
    _FUNCTION = function
    pool = ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=multiprocessing.get_context("fork"),
                               initializer=exit_with_parent, initargs=(os.getpid(),))
    try:
        yield from pool.map(_call, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _FUNCTION = None


__all__ = ["check_workers", "fork_available", "map_files"]

"""`mtrec prepare --engine ray`: the per-file work of each pass run as Ray Data tasks.

The streamed preparation splits its work by input file: each pass (group
counts, partial fit, encode-and-write) is a function of one file and the
position of its first row, and the driver merges the results in file order
(`streaming.prepare`). The embedded engine calls that function file after
file; this engine hands the files to Ray Data as a dataset of `(file,
start)` items, one block each, and `map_batches` runs the function on the
cluster's workers: the partial fit states come back to the driver (pickled)
and are merged there exactly as the embedded engine merges them, and the
shards are written by the workers under the same names. So both engines
write the same fitted state and the same shards, byte for byte in content.

Every worker must see the input files and the output folder at the same
paths (a shared or network file system on a cluster) and have mtrec
installed (`pip install 'mtrec-keras[ray]'`).

Example:

```bash
mtrec prepare -c click_log.yaml --out prepared/ --engine ray                      # a local Ray
mtrec prepare -c click_log.yaml --out prepared/ --engine ray --ray-address auto   # a running cluster
```
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mtrec.errors import ConfigError

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None) -> Any:
    """Imports Ray and starts (or joins) it unless this process already did.

    Args:
        address: a cluster's address (`ray.init(address=...)`, e.g. `"auto"`
            or `"ray://head:10001"`); None starts a local Ray on this machine.

    Returns:
        The `ray` module.

    Raises:
        ConfigError: Ray is not installed.
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ConfigError("--engine ray needs Ray Data: pip install 'mtrec-keras[ray]' "
                          "(or pip install 'ray[data]>=2.40').") from err
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    return ray


def map_files(function: Callable[[int, int], Any], items: list[tuple[int, int]],
              address: str | None = None) -> Iterator[Any]:
    """`function(i, start)` for every `(i, start)` item on Ray workers, results in item order.

    Args:
        function: the per-file work of a pass (a closure: cloudpickle ships
            what it refers to, the config and the fitted encoder included).
        items: `(file index, position of the file's first row)`.
        address: the Ray cluster (see `ensure_ray`).

    Yields:
        The results, in the order of `items`, as they come (Ray Data keeps the order), so the
        driver merges each file's partial fit without holding every file's.
    """
    ray = ensure_ray(address)
    if not items:
        return

    def run(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [pickle.dumps(function(int(i), int(start)), protocol=pickle.HIGHEST_PROTOCOL)
                   for i, start in zip(batch["i"], batch["start"])]
        return {"i": batch["i"], "result": np.array(results, dtype=object)}

    context = ray.data.DataContext.get_current()
    ordered = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # the results in item order, streamed
    try:
        dataset = ray.data.from_items([{"i": i, "start": start} for i, start in items],
                                      override_num_blocks=len(items))
        expected = iter(items)
        for row in dataset.map_batches(run, batch_size=1, batch_format="numpy").iter_rows():
            i, _ = next(expected)
            if int(row["i"]) != i:  # Ray Data broke its order: merging out of order changes the result
                raise RuntimeError(f"Ray Data returned file {int(row['i'])} where file {i} was due.")
            yield pickle.loads(row["result"])
    finally:
        context.execution_options.preserve_order = ordered


__all__ = ["ensure_ray", "map_files"]

"""Worker processes that end with the process that started them.

`concurrent.futures` workers wait for their next task; when the process that started them is
killed (`kill -9`: no clean shutdown), a worker in the middle of a long task would go on, and a
forked one, which holds its parent's end of the task queue too, would wait forever. Each worker
therefore watches its parent: when the parent id changes (the parent died and the worker was
handed to init), it exits at once. A rerun of the job then finishes the work, as after any kill.
"""

from __future__ import annotations

import os
import threading
import time

#: Seconds between a worker's checks that the process that started it is alive.
WATCH_SECONDS = 1.0


def _watch(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(WATCH_SECONDS)


def exit_with_parent(parent: int) -> None:
    """Starts a daemon thread that ends this process when process `parent` is no longer its parent.

    Call it in a worker's initializer, with the starting process's `os.getpid()`.
    """
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="mtrec-watch-parent").start()


__all__ = ["exit_with_parent"]

"""Keeps TensorFlow's start-up chatter out of the `mtrec` command's output (`--verbose` keeps it).

On a machine without a GPU, TensorFlow 2.21 prints lines such as::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796168592.358919   16246 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 00:00:1796168618.194488   16246 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ...

They come in two waves:

- while `tensorflow` is imported, from C++ static initializers that run before
  absl's logging reads any setting, so `TF_CPP_MIN_LOG_LEVEL` does not reach
  them (tensorflow/tensorflow#100442). `quiet_framework_logs` imports
  TensorFlow with file descriptor 2 pointed at a temporary file, then writes
  back every captured line that is not one of these log records;
- later (the `cuInit` error at the first operation), which
  `TF_CPP_MIN_LOG_LEVEL=3` silences.

Python-side, TensorFlow's and absl's loggers are set to ERROR, which hides the
`tf.function retracing` warnings as well. Errors still surface: as Python
exceptions, and an import that fails writes back everything it captured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

#: Set by `quiet_framework_logs`, so that a child process (the Keras 2 retrieval runner)
#: quiets itself the same way.
QUIET_ENV = "MTREC_QUIET_FRAMEWORK_LOGS"

#: What TensorFlow's C++ logging (absl/glog format) writes at import time.
_FRAMEWORK_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\]"    # I0000 00:00:1796.9 123 cudart_stub.cc:31]
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "                # 2025-09-17 14:44:05.157831: I ...
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: )")

#: Loggers set to ERROR: TensorFlow's (retracing warnings) and absl's.
_PYTHON_LOGGERS = ("tensorflow", "absl")


def is_framework_line(line: str) -> bool:
    """Whether `line` is one of TensorFlow's C++ log records (or the absl preamble)."""
    return bool(_FRAMEWORK_LINE.match(line))


@contextlib.contextmanager
def _capture_fd2() -> Iterator[list[str]]:
    """Points file descriptor 2 at a temporary file; yields the list its lines are put in on exit."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines.extend(capture.read().decode(errors="replace").splitlines())


def quiet_framework_logs() -> None:
    """Silences TensorFlow's C++ and absl logging and its Python warnings; call before TensorFlow loads.

    Sets `TF_CPP_MIN_LOG_LEVEL=3` unless the environment already sets it,
    imports TensorFlow (when installed and not yet imported) with its
    import-time log records dropped, and sets the `tensorflow` and `absl`
    Python loggers to ERROR. Child processes inherit the settings through the
    environment (`QUIET_ENV`). Called by the `mtrec` command unless `--verbose`.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ[QUIET_ENV] = "1"
    if "tensorflow" not in sys.modules:
        error: BaseException | None = None
        with _capture_fd2() as lines:
            try:
                import tensorflow  # noqa: F401
            except ImportError:
                pass   # no TensorFlow (another Keras backend): nothing to quiet
            except BaseException as err:  # shown below with everything it printed
                error = err
        kept = lines if error else [line for line in lines if not is_framework_line(line)]
        if kept:
            print("\n".join(kept), file=sys.stderr, flush=True)
        if error:
            raise error
    for name in _PYTHON_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def quiet_if_asked() -> None:
    """`quiet_framework_logs` in a process started by a quiet `mtrec` command (`QUIET_ENV` set)."""
    if os.environ.get(QUIET_ENV) == "1":
        quiet_framework_logs()

"""One of several processes that join with a config of their own, started by
`mtrec.training.launch.launch_processes` from tests/test_distribution.py.

Process i joins (`mtrec.training.multiprocess.join`) with the quickstart config and seed
`SEED + i * DIFFER`: with DIFFER=1 the configs differ and every process must refuse with
ConfigMismatchError; with DIFFER=0 they agree. Prints one JSON line per process.

Usage: python tests/multiprocess_run.py DIFFER RUN_DIR
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtrec.config import apply_overrides, parse_config  # noqa: E402
from mtrec.quickstart import QUICKSTART_CONFIG  # noqa: E402
from mtrec.training.multiprocess import ConfigMismatchError, join  # noqa: E402


def main() -> None:
    differ, run_dir = int(sys.argv[1]), Path(sys.argv[2])
    process = int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"])
    config = parse_config(apply_overrides(QUICKSTART_CONFIG, [f"seed={42 + process * differ}"]))
    try:
        joined, where = join(config, run_dir)
    except ConfigMismatchError as err:
        print(json.dumps({"process": process, "error": str(err)}), flush=True)
        sys.stdout.flush()
        os._exit(0)  # not JAX's shutdown barrier (the test asserts the message)
    print(json.dumps({"process": process, "strategy": joined.training.strategy, "run_dir": str(where)}), flush=True)


if __name__ == "__main__":
    main()

"""SingleTask's fair baseline: each task's network keeps the weights of its own best validation epoch."""

import numpy as np
import pytest

from mtrec.config import apply_overrides, parse_config
from mtrec.data.synthetic import make_synthetic
from mtrec.data.tf_dataset import make_dataset
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.training.run import train


@pytest.fixture(scope="module")
def single_task_run(tmp_path_factory):
    # y0 is learnable and keeps improving; y1 is pure noise, so its validation loss is best early
    # and then rises as its network overfits: one shared stop cannot suit both.
    frame = make_synthetic(1500, correlation=0.9, seed=3)
    frame["y1"] = np.random.default_rng(0).normal(size=len(frame))
    config = parse_config(apply_overrides(QUICKSTART_CONFIG, [
        "model={kind: single_task, bottom: {units: [32]}, tower_units: [8]}",
        "training.epochs=12", "training.verbose=0", "training.learning_rate=0.01", "training.batch_size=64",
        "training.early_stopping={monitor: val_loss, patience: 3}"]))
    return train(config, tmp_path_factory.mktemp("run"), frame=frame), config


def test_each_task_ends_at_its_own_best_epoch(single_task_run):
    result, config = single_task_run
    history = result.history
    best = {t: int(np.argmin(history[f"val_{t}_loss"])) for t in ("y0", "y1")}
    assert best["y1"] < best["y0"], best  # the data make the tasks' best epochs differ
    valid = result.prepared.splits["valid"]
    final = result.model.evaluate(make_dataset(valid.features, valid.labels, 4096), return_dict=True, verbose=0)
    for task in ("y0", "y1"):
        # The final network of each task is the one of its own best epoch.
        assert final[f"{task}_loss"] == pytest.approx(min(history[f"val_{task}_loss"]), rel=1e-4)


def test_run_goes_on_until_every_task_has_stopped(single_task_run):
    result, _ = single_task_run
    history = result.history
    epochs = len(history["loss"])
    best_y0 = int(np.argmin(history["val_y0_loss"]))
    # The noisy task's patience ran out long before; training went on for the learnable one.
    assert epochs == 12 or epochs - 1 - best_y0 == 3

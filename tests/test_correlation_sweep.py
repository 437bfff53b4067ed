"""The correlation sweep's configs and its paired summary (the runs themselves execute in the notebook test)."""

import numpy as np
import pandas as pd
import pytest

from mtrec.analysis.correlation_sweep import MODELS, summarize, sweep_config
from mtrec.config import parse_config


def test_sweep_config_sets_correlation_seed_and_size():
    config = parse_config(sweep_config("omoe", 0.5, 3, rows=1234, epochs=7))
    assert config.model.kind == "omoe" and config.model.params["num_experts"] == 8
    assert config.data.synthetic.correlation == 0.5 and config.data.synthetic.seed == 3 and config.seed == 3
    assert config.data.synthetic.n_rows == 1234 and config.training.epochs == 7
    assert set(MODELS) == {"mmoe", "omoe", "shared_bottom"}


def test_degradation_is_paired_by_seed():
    # Seed 1's functions are much harder (+1.0 on every loss); the pairing removes that.
    rows = []
    for seed, offset in ((0, 0.0), (1, 1.0)):
        for model, slope in (("mmoe", 0.02), ("shared_bottom", 0.10)):
            for corr in (0.5, 0.9, 1.0):
                rows.append({"model": model, "correlation": corr, "seed": seed,
                             "test_loss": 0.3 + offset + slope * (1.0 - corr) / 0.5 + 0.01 * seed})
    summary = summarize(pd.DataFrame(rows)).set_index(["model", "correlation"])
    assert summary.loc[("mmoe", 0.5), "degradation"] == pytest.approx(0.02)
    assert summary.loc[("shared_bottom", 0.5), "degradation"] == pytest.approx(0.10)
    assert summary.loc[("shared_bottom", 1.0), "degradation"] == 0.0
    assert summary.loc[("mmoe", 0.5), "degradation_se"] == pytest.approx(0.0, abs=1e-12)
    # The unpaired mean carries the seed offset, and its spread shows it.
    assert summary.loc[("mmoe", 0.5), "test_loss_mean"] == pytest.approx(0.3 + 0.5 + 0.02 + 0.005)
    assert summary.loc[("mmoe", 0.5), "test_loss_std"] == pytest.approx(np.std([0.32, 1.33], ddof=1))
    assert summary.loc[("mmoe", 0.5), "runs"] == 2


def test_sweep_run_honours_weighting_and_val_main_loss():
    # The sweep trains through `fit_model`, the core of `mtrec train`: a `weighting:` section and
    # early stopping on `val_main_loss` work there as in a training run.
    from mtrec.analysis.correlation_sweep import fit_and_score
    from mtrec.config import apply_overrides

    raw = apply_overrides(sweep_config("mmoe", 0.5, 0, rows=400, epochs=3), [
        "weighting.kind=uncertainty", "training.early_stopping.monitor=val_main_loss"])
    result = fit_and_score(parse_config(raw))
    history = result["history"]
    assert result["epochs"] == len(history["val_main_loss"]) == 3
    # Uncertainty weighting learns its weights: they leave 1.0 after the first epoch.
    assert history["y0_weight"][-1] != pytest.approx(1.0) and history["y1_weight"][-1] != pytest.approx(1.0)
    assert set(result["test"]) == {"y0", "y1"}

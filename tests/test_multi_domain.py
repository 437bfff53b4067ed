"""Multi-domain gated models: `model.gate_inputs` conditions every gate on a domain column's embedding."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from mtrec.config import parse_config
from mtrec.errors import ConfigError
from mtrec.layers.mixture_of_experts import MixtureOfExperts
from mtrec.models import CGC, MMoE, OMoE, PLE
from mtrec.training.run import train
from mtrec.training.trained_run import load_run

LAYOUT = {"numeric_dim": 3, "tables": {"Campaign Segment": {"input_dim": 5, "output_dim": 4},
                                       "item": {"input_dim": 20, "output_dim": 4}},
          "categorical": {"Campaign Segment": "Campaign Segment", "item": "item"}, "multi_categorical": {}}
TASKS = [{"name": "a", "kind": "binary"}, {"name": "b", "kind": "regression"}]


def inputs(n: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"numeric": rng.normal(size=(n, 3)).astype("float32"),
            "Campaign Segment": rng.integers(2, 5, n).astype("int32"), "item": rng.integers(0, 20, n).astype("int32")}


def config(model: dict, features: list | None = None) -> dict:
    return {"name": "md", "seed": 1,
            "features": features or [{"name": "x*", "kind": "numeric"},
                                     {"name": "Campaign Segment", "kind": "categorical", "embedding_dim": 3}],
            "tasks": [{"name": "y", "kind": "binary"}, {"name": "z", "kind": "regression"}], "model": model,
            "training": {"epochs": 1, "batch_size": 128, "verbose": 0, "early_stopping": None}}


def test_gate_inputs_in_config_round_trip_and_refusals():
    for kind in ("mmoe", "omoe", "cgc", "ple"):
        parsed = parse_config(config({"kind": kind, "gate_inputs": ["Campaign Segment"]}))
        assert parsed.model.params["gate_inputs"] == ["Campaign Segment"]
        assert parse_config(parsed.get_config()).get_config() == parsed.get_config()
    refusals = [
        ({"kind": "mmoe", "gate_inputs": ["segment"]}, r"model\.gate_inputs\[0\].*'segment' is not a declared"),
        ({"kind": "mmoe", "gate_inputs": ["x1"]}, None),  # a glob's column: not declared as embedded
        ({"kind": "mmoe", "gate_inputs": "Campaign Segment"}, r"model\.gate_inputs.*list"),
        ({"kind": "shared_bottom", "gate_inputs": ["Campaign Segment"]}, "gate_inputs"),
    ]
    for model, match in refusals:
        with pytest.raises(ConfigError, match=match or "gate_inputs"):
            parse_config(config(model))
    with pytest.raises(ConfigError, match="'age' is a numeric feature"):
        parse_config(config({"kind": "ple", "gate_inputs": ["age"]},
                            [{"name": "age", "kind": "numeric"}, {"name": "c", "kind": "categorical"}]))


def test_mixture_gates_read_only_the_gate_input():
    layer = MixtureOfExperts(num_gates=2, num_experts=3, gate_input_dim=4)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    g = np.tile(np.random.default_rng(1).normal(size=(1, 4)).astype("float32"), (5, 1))
    mixtures, gates = layer(x, gate_inputs=g)
    assert mixtures.shape == (5, 2, 16) and gates.shape == (5, 2, 3)
    np.testing.assert_allclose(np.asarray(gates), np.asarray(gates)[:1].repeat(5, 0), atol=1e-6)
    assert not np.allclose(np.asarray(mixtures)[0], np.asarray(mixtures)[1])  # the experts still read x
    clone = MixtureOfExperts.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="gate_inputs"):
        layer(x)


@pytest.mark.parametrize("cls", [MMoE, OMoE, CGC, PLE])
def test_gates_are_one_mixture_per_domain_and_reload_identically(cls, tmp_path):
    kwargs = {"num_experts": 3} if cls in (MMoE, OMoE) else {}
    model = cls(TASKS, LAYOUT, gate_inputs=["Campaign Segment"], expert={"units": [8]}, **kwargs)
    x = inputs()
    predictions = model.predict_on_batch(x)
    gates = model.gate_weights(x)
    domains = x["Campaign Segment"]
    for key, weights in gates.items():
        for domain in np.unique(domains):
            rows = weights[domains == domain]
            np.testing.assert_allclose(rows, rows[:1].repeat(len(rows), 0), atol=1e-6, err_msg=key)
        assert not np.allclose(weights[domains == 2][0], weights[domains == 3][0]), key
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert again.gate_inputs == ["Campaign Segment"]
    for task, value in again.predict_on_batch(x).items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(predictions[task]))
    with pytest.raises(ValueError, match="not embedded features"):
        cls(TASKS, LAYOUT, gate_inputs=["numeric"], **kwargs)


def test_a_trained_multi_domain_run_keeps_its_domain_gates(tmp_path):
    rng = np.random.default_rng(0)
    n = 900
    domain = rng.choice(["Mens E-Mail", "Womens E-Mail", "No E-Mail"], n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    # The domains weigh the inputs differently: what domain-conditioned gates can pick up.
    logit = np.where(domain == "Mens E-Mail", 2 * x1, np.where(domain == "Womens E-Mail", 2 * x2, 0.0))
    frame = pd.DataFrame({"x1": x1, "x2": x2, "Campaign Segment": domain,
                          "y": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), "z": x1 + x2})
    cfg = parse_config(config({"kind": "mmoe", "num_experts": 3, "expert": {"units": [8]},
                               "gate_inputs": ["Campaign Segment"]}))
    train(cfg, tmp_path / "run", frame=frame)
    run = load_run(tmp_path / "run")
    gates = run.model.gate_weights(run.encoder.transform(frame))["y"]
    for name in np.unique(domain):
        rows = gates[domain == name]
        np.testing.assert_allclose(rows, rows[:1].repeat(len(rows), 0), atol=1e-6)

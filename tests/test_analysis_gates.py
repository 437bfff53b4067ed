"""Gate statistics on hand-made gates with known answers, grouping by level, segments and the collapse alarm."""

import math

import numpy as np
import pandas as pd
import pytest

from mtrec.analysis.collapse import CollapseThresholds, check_collapse
from mtrec.analysis.gate_stats import (
    check_gates, divergence_matrix, effective_experts, effective_experts_used, expert_utilization,
    gate_divergence, gate_entropy, js_divergence, summarize_gates,
)
from mtrec.analysis.segments import gates_by_segment, segment_labels
from mtrec.errors import ConfigError
from mtrec.training.gates import group_gates


def _uniform(n, k):
    return np.full((n, k), 1.0 / k)


def _one_hot(columns, k):
    return np.eye(k)[np.asarray(columns)]


@pytest.mark.parametrize("k", [2, 4, 8])
def test_uniform_gates_have_entropy_log_k_and_k_effective_experts(k):
    gates = _uniform(50, k)
    np.testing.assert_allclose(gate_entropy(gates), math.log(k))
    assert effective_experts(gates) == pytest.approx(k)
    assert effective_experts_used(gates) == pytest.approx(k)
    np.testing.assert_allclose(expert_utilization(gates), 1.0 / k)


def test_one_hot_gates_have_entropy_0_and_1_effective_expert():
    same = _one_hot([2] * 30, 5)
    np.testing.assert_allclose(gate_entropy(same), 0.0)
    assert effective_experts(same) == pytest.approx(1.0)
    assert effective_experts_used(same) == pytest.approx(1.0)
    # Hard routing to different experts: 1 expert per example, 2 used overall (half each).
    split = _one_hot([0, 3] * 15, 5)
    assert effective_experts(split) == pytest.approx(1.0)
    assert effective_experts_used(split) == pytest.approx(2.0)
    np.testing.assert_allclose(expert_utilization(split), [0.5, 0, 0, 0.5, 0])


def test_entropy_of_a_two_point_gate_matches_the_formula():
    p = 0.2
    gates = np.array([[p, 1 - p]])
    expected = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert gate_entropy(gates)[0] == pytest.approx(expected)


def test_identical_tasks_have_divergence_0_and_disjoint_ones_log_2():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 6))
    gates = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert gate_divergence(gates, gates.copy()) == pytest.approx(0.0, abs=1e-12)
    assert gate_divergence(_one_hot([0] * 10, 4), _one_hot([1] * 10, 4)) == pytest.approx(math.log(2))
    # JS by hand for one pair: m = (p + q) / 2, JS = H(m) - (H(p) + H(q)) / 2.
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])
    m = np.array([0.25, 0.5, 0.25])
    h = lambda d: -sum(x * math.log(x) for x in d if x > 0)
    assert js_divergence(p, q) == pytest.approx(h(m) - (h(p) + h(q)) / 2)
    matrix = divergence_matrix({"a": gates, "b": gates, "c": _uniform(40, 6)})
    assert matrix.loc["a", "b"] == pytest.approx(0.0, abs=1e-12)
    assert matrix.loc["a", "c"] == matrix.loc["c", "a"] > 0


def test_per_example_divergence_sees_what_utilization_hides():
    # Same utilization (half/half) but opposite routing on every example.
    a, b = _one_hot([0, 1] * 10, 2), _one_hot([1, 0] * 10, 2)
    assert gate_divergence(a, b, per_example=False) == pytest.approx(0.0, abs=1e-12)
    assert gate_divergence(a, b) == pytest.approx(math.log(2))


def test_summary_names_the_top_expert():
    gates = {"y0": np.tile([0.1, 0.7, 0.2], (10, 1)), "y1": _uniform(10, 3)}
    summary = summarize_gates(gates)
    assert summary.loc["y0", "top_expert"] == 1
    assert summary.loc["y0", "top_share"] == pytest.approx(0.7)
    assert summary.loc["y1", "effective_experts"] == pytest.approx(3.0)
    assert summary.loc["y1", "max_entropy"] == pytest.approx(math.log(3))


@pytest.mark.parametrize("bad, message", [
    (np.ones((3,)), "non-empty"),
    (np.zeros((0, 3)), "non-empty"),
    (np.array([[0.5, np.nan]]), "NaN"),
    (np.array([[1.5, -0.5]]), "negative"),
    (np.array([[0.5, 0.2]]), "sum to 1"),
])
def test_bad_gate_arrays_are_refused_with_the_gate_named(bad, message):
    with pytest.raises(ValueError, match=message) as err:
        check_gates(bad, "click")
    assert "click" in str(err.value)


# -- grouping by level ------------------------------------------------------------------


def test_group_gates_splits_ple_levels():
    gates = {"level0/y0": _uniform(4, 2), "level0/y1": _uniform(4, 2), "level0/shared": _uniform(4, 3),
             "level1/y0": _uniform(4, 2), "level1/y1": _uniform(4, 2)}
    levels = group_gates(gates)
    assert [lv.level for lv in levels] == ["level0", "level1"]
    assert set(levels[0].task_gates) == {"y0", "y1"} and "shared" in levels[0].gates
    assert levels[1].key("y0") == "level1/y0"


# -- collapse alarm ----------------------------------------------------------------------


def test_alarm_fires_when_every_task_sits_on_one_expert():
    collapsed = np.tile([0.94, 0.02, 0.02, 0.02], (20, 1))
    alarm = check_collapse({"y0": collapsed, "y1": collapsed})
    assert alarm.fired
    assert alarm.dominant["y0"] == ("e0", pytest.approx(0.94))
    assert "same expert" in alarm.reasons[0]
    # 0.02 is 8% of the uniform share 0.25, below the default 10%: the others are dead too.
    assert alarm.dead_experts == ["e1", "e2", "e3"]
    loose = check_collapse({"y0": collapsed, "y1": collapsed}, CollapseThresholds(0.95, 0.05))
    assert not loose.fired


def test_dead_experts_are_those_every_gate_ignores():
    y0 = np.tile([0.5, 0.49, 0.01, 0.0], (10, 1))
    y1 = np.tile([0.0, 0.49, 0.5, 0.01], (10, 1))
    alarm = check_collapse({"y0": y0, "y1": y1})
    # e3 gets 0.01 at most = 4% of the uniform 0.25; e2 is used by y1, e0 by y0.
    assert alarm.dead_experts == ["e3"]
    assert alarm.fired and "e3" in alarm.reasons[0]
    assert not check_collapse({"y0": y0, "y1": y1}, CollapseThresholds(dead_share=0.03)).fired


def test_alarm_is_quiet_on_spread_gates_and_when_one_task_still_mixes():
    rng = np.random.default_rng(1)
    spread = rng.dirichlet(np.ones(8) * 5, size=100)
    assert not check_collapse({"y0": spread, "y1": spread[::-1]}).fired
    focused = np.tile(np.eye(8)[0] * 0.95 + 0.05 / 8, (100, 1))
    alarm = check_collapse({"y0": focused, "y1": spread})
    assert not alarm.fired and alarm.dominant["y0"][1] > 0.9


def test_thresholds_are_checked():
    with pytest.raises(ConfigError, match="dominant_share"):
        CollapseThresholds(dominant_share=0)
    with pytest.raises(ConfigError, match="dead_share"):
        CollapseThresholds(dead_share=1.5)


# -- segments ----------------------------------------------------------------------------


def test_gates_by_segment_averages_within_each_segment():
    gates = {"y0": np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])}
    table = gates_by_segment(gates, ["a", "b", "a", "b"])
    a = table[table["segment"] == "a"].iloc[0]
    assert a["rows"] == 2 and a["e0"] == pytest.approx(0.75) and a["e1"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="rows"):
        gates_by_segment(gates, ["a", "b"])


def test_segment_labels_buckets_numbers_and_folds_rare_categories():
    ages = pd.Series(np.arange(100, dtype=float))
    labels = segment_labels(ages, bins=4)
    assert labels.nunique() == 4 and (labels.value_counts() == 25).all()
    assert labels[0] == labels.cat.categories[0] == "(-0.001, 24.75]"  # buckets from low to high
    table = gates_by_segment({"y0": _uniform(100, 2)}, labels)
    assert list(table["segment"]) == list(labels.cat.categories)
    tickers = pd.Series(["a"] * 5 + ["b"] * 4 + ["c", "d", None])
    labels = segment_labels(tickers, max_segments=3)
    assert labels.value_counts().to_dict() == {"a": 5, "b": 4, "(other)": 3}
    assert segment_labels(pd.Series([1.0, None]))[1] == "(missing)"

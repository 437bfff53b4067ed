"""Model tests: the contract battery over every model kind (`tests/contract.py`), then weight
counts by hand, shared tables after reload, gate weights, and learning beats a constant."""

import keras
import numpy as np
import pytest

from mtrec.models import MMoE, MODEL_KINDS, GatedModel, SharedBottom, SingleTask
from mtrec.tasks import BinaryTask, MulticlassTask, RegressionTask
from tests.contract import BACKENDS, CHECKS, Case, run_check

TASKS = [BinaryTask("click"), RegressionTask("rating", loss="huber"), MulticlassTask("genre", num_classes=3)]
LAYOUT = {
    "numeric_dim": 5,
    "tables": {"items": {"input_dim": 12, "output_dim": 4}, "users": {"input_dim": 7, "output_dim": 3}},
    "categorical": {"item": "items", "last_item": "items", "user": "users"},
    "multi_categorical": {"genres": "items"},
}


def _inputs(n=32):
    rng = np.random.default_rng(0)
    return {"numeric": rng.normal(size=(n, 5)).astype("float32"), "item": rng.integers(0, 12, n).astype("int32"),
            "last_item": rng.integers(0, 12, n).astype("int32"), "user": rng.integers(0, 7, n).astype("int32"),
            "genres": rng.integers(0, 12, (n, 3)).astype("int32")}


def _labels(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "click": rng.integers(0, 2, (n, 1)).astype("float32"),
        "rating": rng.normal(size=(n, 1)).astype("float32"),
        "genre": rng.integers(0, 3, (n, 1)).astype("float32"),
    }


def _make(kind, layout=LAYOUT, **params):
    return MODEL_KINDS[kind](TASKS, layout, **params)


def _case(kind, **params):
    # DCN experts fit eagerly: tracing their graph costs 10-20 s on CPU; graph-mode training of
    # DCN experts is covered by test_models_learn_a_nonlinear_two_task_function.
    dcn = params.get("expert", {}).get("kind") == "dcn"
    skip = {"mixed_precision": "DCN experts under mixed precision: CrossExpertBank's own case; "
                               "the gated wiring: the MLP-expert case of the same kind"} if dcn else {}
    case_id = kind + ("-dcn" if dcn else "")
    return Case(case_id, lambda: _make(kind, **params), _inputs, model=True, labels=_labels, eager_fit=dcn,
                skip=skip, skip_on={"jax": _JAX_SKIP.get(case_id, {})})


# On JAX (tests/test_jax.py), compiling each training step costs seconds on CPU: the training
# checks skip where the same layers are trained in another case there.
_SAME_AS = {"omoe": "mmoe (OMoE is MMoE with one gate)", "cgc": "ple (CGC is PLE with one level)",
            "omoe-dcn": "mmoe-dcn", "cgc-dcn": "mmoe-dcn", "ple-dcn": "mmoe-dcn"}
_JAX_SKIP = {case: {check: f"on JAX, trained in the {other} case" for check in ("fit_step", "mixed_precision")}
             for case, other in _SAME_AS.items()}
# Mixed precision of MLP-and-tower models: the layers' own cases (MLP, TaskTower, CrossStitchUnit).
for _kind in ("single_task", "soft_sharing", "cross_stitch"):
    _JAX_SKIP[_kind] = {"mixed_precision": "on JAX, its layers' own cases and the mmoe, ple, shared_bottom cases"}


# Every model kind with its defaults, plus each gated kind with low-rank DCN-v2 experts.
MODEL_CASES = [_case(kind) for kind in sorted(MODEL_KINDS)] + [
    _case(kind, expert={"kind": "dcn", "projection_dim": 4})
    for kind in sorted(MODEL_KINDS) if issubclass(MODEL_KINDS[kind], GatedModel)]


def test_every_model_kind_has_a_case():
    assert {case.id for case in MODEL_CASES} >= set(MODEL_KINDS)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_model_contract(case, check, backend, tmp_path):
    run_check(check, case, tmp_path)


def test_outputs_follow_their_tasks(layout, inputs):
    outputs = _make("mmoe", layout)(inputs)
    assert set(outputs) == {"click", "rating", "genre"}
    assert outputs["click"].shape == (64, 1) and outputs["genre"].shape == (64, 3)
    p = keras.ops.convert_to_numpy(outputs["click"])
    assert ((p > 0) & (p < 1)).all()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs["genre"]).sum(1), 1, rtol=1e-5)


def test_weight_counts_match_hand_computation(layout):
    # Embedding: items 12x4 + users 7x3 = 69; embedded width = 5 + 4 + 4 + 3 + 4 = 20.
    emb, width = 12 * 4 + 7 * 3, 20
    towers = lambda units_in: sum(units_in * 8 + 8 + 8 * out + out for out in (1, 1, 3))
    mmoe = MMoE(TASKS, layout, num_experts=8, expert={"units": [16]}, tower_units=[8])
    mmoe_expected = emb + 8 * (width * 16 + 16) + 3 * (width * 8 + 8) + towers(16)
    shared = SharedBottom(TASKS, layout, bottom={"units": [32]})
    shared_expected = emb + width * 32 + 32 + towers(32)
    single = SingleTask(TASKS, layout, bottom={"units": [32]})
    single_expected = 3 * (emb + width * 32 + 32) + towers(32)
    x = {k: np.zeros((2,) + ((3,) if k == "genres" else (5,) if k == "numeric" else ()),
                     dtype="float32" if k == "numeric" else "int32")
         for k in ("numeric", "item", "last_item", "user", "genres")}
    for model, expected in ((mmoe, mmoe_expected), (shared, shared_expected), (single, single_expected)):
        model(x)
        assert model.count_params() == expected, type(model).__name__


def test_shared_table_stays_shared_after_reload(layout, inputs, tmp_path):
    model = SharedBottom(TASKS, layout)
    model(inputs)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    tables = reloaded.embedding.tables
    assert sorted(tables) == ["items", "users"]
    # Changing the one "items" table changes every feature that reads it.
    before = keras.ops.convert_to_numpy(reloaded.embedding(inputs))
    tables["items"].assign(tables["items"] + 1.0)
    after = keras.ops.convert_to_numpy(reloaded.embedding(inputs))
    np.testing.assert_allclose(after[:, 5:13] - before[:, 5:13], 1.0, rtol=1e-5)


def test_single_task_shares_nothing(layout, inputs):
    model = SingleTask(TASKS, layout)
    model(inputs)
    ids = [id(v) for e in model.embeddings for v in e.weights]
    assert len(ids) == len(set(ids)) == 3 * 2


def test_mmoe_gate_weights(layout, inputs, tmp_path):
    model = MMoE(TASKS, layout, num_experts=4)
    model(inputs)
    gates = model.gate_weights(inputs, batch_size=10)
    assert set(gates) == {"click", "rating", "genre"}
    for g in gates.values():
        assert g.shape == (64, 4)
        np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(reloaded.gate_weights(inputs)["click"], model.gate_weights(inputs)["click"])
    with pytest.raises(TypeError, match="no gates"):
        SharedBottom(TASKS, layout).gate_weights(inputs)


def test_mmoe_paper_sizes(layout, inputs):
    model = MMoE(TASKS, layout, num_experts=8, expert={"units": [16]}, tower_units=[8])
    model(inputs)
    assert model.mixture.experts.kernels[0].shape == (20, 16) or \
        tuple(model.mixture.experts.kernels[0].shape) == (8, 20, 16)
    assert [t.units for t in model.towers] == [[8]] * 3


@pytest.mark.parametrize("kind,params", [("mmoe", {}), ("shared_bottom", {}), ("single_task", {}),
                                         ("mmoe", {"expert": {"kind": "dcn", "num_cross_layers": 1}})],
                         ids=["mmoe", "shared_bottom", "single_task", "mmoe-dcn"])
def test_models_learn_a_nonlinear_two_task_function(kind, params):
    # Two correlated regression tasks on 10 Gaussian inputs; a model that learns
    # must explain most of the variance (a constant explains none).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 10)).astype("float32")
    w = rng.normal(size=(10,)) / np.sqrt(10)
    y0 = (x @ w + np.sin(2 * x @ w)).astype("float32")[:, None]
    y1 = (x @ w + np.cos(x @ w)).astype("float32")[:, None]
    layout = {"numeric_dim": 10, "tables": {}, "categorical": {}, "multi_categorical": {}}
    keras.utils.set_random_seed(1)
    model = MODEL_KINDS[kind]([RegressionTask("a"), RegressionTask("b")], layout, **params)
    model.compile_for_tasks(keras.optimizers.Adam(0.01))
    model.fit({"numeric": x[:2500]}, {"a": y0[:2500], "b": y1[:2500]}, epochs=15, batch_size=128, verbose=0)
    pred = model.predict({"numeric": x[2500:]}, verbose=0)
    for name, y in (("a", y0[2500:]), ("b", y1[2500:])):
        r2 = 1 - np.mean((pred[name] - y) ** 2) / np.var(y)
        assert r2 > 0.8, (kind, name, r2)


def test_omoe_shares_one_gate_across_tasks(layout, inputs):
    from mtrec.models import OMoE

    model = OMoE(TASKS, layout, num_experts=4)
    gates = model.gate_weights(inputs)
    np.testing.assert_array_equal(gates["click"], gates["rating"])
    np.testing.assert_allclose(gates["click"].sum(axis=1), 1.0, rtol=1e-5)
    # One gate: MMoE's weights minus (tasks - 1) gates of (20 inputs x 4 experts + 4).
    mmoe = MMoE(TASKS, layout, num_experts=4)
    mmoe(inputs)
    assert mmoe.count_params() - model.count_params() == 2 * (20 * 4 + 4)


def test_ple_gates_per_level(layout, inputs):
    from mtrec.models import PLE

    model = PLE(TASKS, layout, num_levels=2, num_shared_experts=2, num_task_experts=3, expert={"units": [4]})
    gates = model.gate_weights(inputs)
    assert set(gates) == {"level0/click", "level0/rating", "level0/genre", "level0/shared",
                          "level1/click", "level1/rating", "level1/genre"}
    assert gates["level0/click"].shape == (64, 3 + 2)
    assert gates["level0/shared"].shape == (64, 3 * 3 + 2)
    for g in gates.values():
        np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=1e-5)
    # Weights: per level, 3 task banks of 3 experts and one bank of 2 shared experts
    # (width 20 in level 0, 4 above), 3 task gates of 5, a shared gate of 11 in level 0.
    level0 = 11 * (20 * 4 + 4) + 3 * (20 * 5 + 5) + (20 * 11 + 11)
    level1 = 11 * (4 * 4 + 4) + 3 * (4 * 5 + 5)
    towers = sum(4 * 8 + 8 + 8 * out + out for out in (1, 1, 3))
    assert model.count_params() == 12 * 4 + 7 * 3 + level0 + level1 + towers


def test_cgc_is_one_level_with_task_keys(layout, inputs):
    from mtrec.models import CGC

    model = CGC(TASKS, layout, num_shared_experts=1, num_task_experts=2)
    gates = model.gate_weights(inputs)
    assert set(gates) == {"click", "rating", "genre"} and gates["click"].shape == (64, 3)
    assert "num_levels" not in model.get_config()


@pytest.mark.parametrize("kind", ["mmoe", "omoe", "cgc", "ple"])
def test_dcn_experts_swap_in_behind_the_same_gates(kind, layout, inputs):
    mlp = _make(kind, layout)
    dcn = _make(kind, layout, expert={"kind": "dcn", "num_cross_layers": 2})
    mlp(inputs), dcn(inputs)
    # Each expert adds two full-rank cross layers (a d x d kernel and a d bias) in front of its
    # MLP, d its input width: 20 for the embedded inputs (5 numeric + 4 + 4 + 3 + 4), 16 for
    # the mixtures PLE's second level reads. MMoE/OMoE: 8 experts; CGC: 1 shared + 1 per task.
    cross = lambda d: 2 * (d * d + d)  # noqa: E731
    extra = {"mmoe": 8 * cross(20), "omoe": 8 * cross(20), "cgc": 4 * cross(20),
             "ple": 4 * cross(20) + 4 * cross(16)}[kind]
    assert dcn.count_params() - mlp.count_params() == extra
    for name, gate in dcn.gate_weights(inputs).items():
        np.testing.assert_allclose(gate.sum(axis=1), 1, rtol=1e-5, err_msg=name)


def test_omoe_is_mmoe_with_one_gate_and_cgc_is_ple_with_one_level(layout, inputs):
    from mtrec.models import CGC, OMoE, PLE

    assert issubclass(OMoE, MMoE) and issubclass(CGC, PLE)
    assert len(_make("omoe", layout).mixture.gates) == 1 and len(_make("mmoe", layout).mixture.gates) == 3
    assert len(_make("cgc", layout).levels) == 1


@pytest.mark.parametrize("kind,flat,nested", [
    ("mmoe", {"expert_units": [8], "expert_dropout": 0.1, "expert_activation": "tanh"},
     {"expert": {"units": [8], "dropout": 0.1, "activation": "tanh"}}),
    ("ple", {"expert_kind": "dcn", "num_cross_layers": 1, "cross_projection_dim": 2},
     {"expert": {"kind": "dcn", "num_cross_layers": 1, "projection_dim": 2}}),
    ("shared_bottom", {"bottom_units": [8], "bottom_dropout": 0.2}, {"bottom": {"units": [8], "dropout": 0.2}}),
    ("cross_stitch", {"bottom_units": [6, 4], "bottom_activation": "tanh"},
     {"bottom": {"units": [6, 4], "activation": "tanh"}}),
])
def test_flat_keys_of_0_1_build_the_same_model_as_the_spec(kind, flat, nested, layout, inputs):
    models = []
    for params in (flat, nested):
        keras.utils.set_random_seed(3)
        models.append(_make(kind, layout, name="m", **params))
        models[-1](inputs)
    old, new = models
    assert old.get_config() == new.get_config()
    assert len(old.weights) == len(new.weights)
    for a, b in zip(old.weights, new.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_gate_weights_are_compiled_once_and_silent(layout, inputs, capfd):
    model = _make("ple", layout)
    first = model.gate_weights(inputs, batch_size=16)
    reader = model.__dict__["_gate_reader"]
    for batch_size in (7, 64, 100):
        again = model.gate_weights(inputs, batch_size=batch_size)
        for key in first:
            np.testing.assert_allclose(again[key], first[key], rtol=1e-6)
    assert model.__dict__["_gate_reader"] is reader
    assert reader not in model._flatten_layers()  # not part of the model's saved state
    out, err = capfd.readouterr()
    assert "retracing" not in out + err and "step" not in out

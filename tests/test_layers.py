"""Layer tests: the contract battery over every exported layer (`tests/contract.py`), then
hand-computed outputs, weight counts, bad arguments and the expert/bottom specs."""

import keras
import numpy as np
import pytest
from keras import ops

import mtrec.layers
from mtrec.layers import (
    MLP, BottomSpec, CrossExpertBank, CrossStitchUnit, ExpertBank, ExpertSpec, ExtractionLevel, FeatureEmbedding,
    MixtureOfExperts, SoftmaxGate, TaskTower,
)
from tests.contract import BACKENDS, CHECKS, Case, run_check

LAYOUT = {
    "numeric_dim": 5,
    "tables": {"items": {"input_dim": 12, "output_dim": 4}, "users": {"input_dim": 7, "output_dim": 3}},
    "categorical": {"item": "items", "user": "users"},
    "multi_categorical": {"genres": "items"},
}


def _normal(*shape, seed=1):
    return lambda: np.random.default_rng(seed).normal(size=shape).astype("float32")


def _encoded():
    rng = np.random.default_rng(0)
    return {"numeric": rng.normal(size=(8, 5)).astype("float32"), "item": rng.integers(0, 12, (8, 1)).astype("int32"),
            "user": rng.integers(0, 7, (8, 1)).astype("int32"), "genres": rng.integers(0, 12, (8, 3)).astype("int32")}


#: One small case per exported layer (a second for variants that take another code path).
LAYER_CASES = [
    Case("MLP", lambda: MLP([8, 4], dropout=0.1), _normal(3, 6)),
    Case("ExpertBank", lambda: ExpertBank(num_experts=3, units=[5, 2]), _normal(4, 6)),
    Case("CrossExpertBank", lambda: CrossExpertBank(num_experts=2, units=[3], num_cross_layers=1), _normal(4, 6),
         eager_fit=True),
    Case("CrossExpertBank-low_rank", lambda: CrossExpertBank(num_experts=2, units=[3], projection_dim=2),
         _normal(4, 6), eager_fit=True),
    Case("SoftmaxGate", lambda: SoftmaxGate(num_experts=4, temperature=0.5), _normal(2, 6)),
    Case("MixtureOfExperts", lambda: MixtureOfExperts(num_gates=2, num_experts=3, expert={"units": [4]}),
         _normal(4, 6), eager_fit=True),
    Case("ExtractionLevel", lambda: ExtractionLevel(2, num_shared_experts=2, expert={"units": [4]}, shared_gate=True),
         lambda: [_normal(4, 6, seed=s)() for s in range(3)], eager_fit=True),
    Case("TaskTower", lambda: TaskTower(output_units=3, output_activation="softmax", units=[5]), _normal(2, 6)),
    Case("FeatureEmbedding", lambda: FeatureEmbedding(LAYOUT), _encoded),
    # Numeric embeddings (tests/test_numeric_embeddings.py): both kinds, and inside FeatureEmbedding.
    Case("NumericEmbedding-quantile", lambda: mtrec.layers.NumericEmbedding("quantile", 3, edges=[-1.0, 0.0, 2.0]),
         _normal(6, 1)),
    Case("NumericEmbedding-periodic", lambda: mtrec.layers.NumericEmbedding("periodic", 3, frequencies=4),
         _normal(6, 1)),
    Case("FeatureEmbedding-numeric_embeddings", lambda: FeatureEmbedding({**LAYOUT, "numeric_embeddings": [
        {"column": 1, "name": "b", "kind": "quantile", "dim": 2, "relu": True, "edges": [-1.0, 0.0, 1.0]},
        {"column": 4, "name": "e", "kind": "periodic", "dim": 2, "relu": False, "frequencies": 3, "sigma": 1.0}]}),
         _encoded),
    Case("CrossStitchUnit", lambda: CrossStitchUnit(num_tasks=2), lambda: [_normal(4, 5, seed=s)() for s in (1, 2)]),
]


def test_every_exported_layer_has_a_case():
    exported = {name for name in mtrec.layers.__all__
                if isinstance(getattr(mtrec.layers, name), type)
                and issubclass(getattr(mtrec.layers, name), keras.layers.Layer)}
    assert exported == {case.id.split("-")[0] for case in LAYER_CASES}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.id)
def test_layer_contract(case, check, backend, tmp_path):
    run_check(check, case, tmp_path)


# Hand-computed weight counts and output shapes.
LAYERS = [
    (lambda: MLP([8, 4]), (3, 6), (3, 4), 6 * 8 + 8 + 8 * 4 + 4),
    (lambda: ExpertBank(num_experts=3, units=[5, 2]), (4, 6), (4, 3, 2), 3 * (6 * 5 + 5 + 5 * 2 + 2)),
    (lambda: SoftmaxGate(num_experts=4), (2, 6), (2, 4), 6 * 4 + 4),
    # Two full-rank cross layers (6x6 + 6 each) per expert, then the experts' MLPs.
    (lambda: CrossExpertBank(num_experts=3, units=[5, 2], num_cross_layers=2), (4, 6), (4, 3, 2),
     3 * 2 * (6 * 6 + 6) + 3 * (6 * 5 + 5 + 5 * 2 + 2)),
    # Low rank 2: a 6x2 down projection and a 2x6 up projection with a bias of 6.
    (lambda: CrossExpertBank(num_experts=3, units=[5, 2], num_cross_layers=1, projection_dim=2),
     (4, 6), (4, 3, 2), 3 * (6 * 2 + 2 * 6 + 6) + 3 * (6 * 5 + 5 + 5 * 2 + 2)),
    (lambda: TaskTower(output_units=3, output_activation="softmax", units=[5]), (2, 6), (2, 3),
     6 * 5 + 5 + 5 * 3 + 3),
]


@pytest.mark.parametrize("make,in_shape,out_shape,weights", LAYERS)
def test_weight_counts_and_shapes(make, in_shape, out_shape, weights):
    layer = make()
    y = layer(np.random.default_rng(1).normal(size=in_shape).astype("float32"))
    assert tuple(y.shape) == out_shape
    assert layer.count_params() == weights
    assert tuple(layer.compute_output_shape(in_shape)) == out_shape


def test_mlp_matches_hand_computation():
    layer = MLP([3], activation="relu")
    x = np.array([[1.0, -2.0]], dtype="float32")
    y = ops.convert_to_numpy(layer(x))
    dense = layer._blocks[0][0]
    kernel, bias = (ops.convert_to_numpy(w) for w in dense.weights)
    np.testing.assert_allclose(y, np.maximum(x @ kernel + bias, 0), rtol=1e-6)


def test_empty_mlp_is_identity():
    x = np.ones((2, 3), dtype="float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(MLP([])(x)), x)


def test_expert_bank_equals_separate_mlps():
    bank = ExpertBank(num_experts=2, units=[4, 3])
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    y = ops.convert_to_numpy(bank(x))
    k0, k1 = (ops.convert_to_numpy(k) for k in bank.kernels)
    b0, b1 = (ops.convert_to_numpy(b) for b in bank.biases)
    for e in range(2):
        hidden = np.maximum(x @ k0[e] + b0[e], 0)
        expected = np.maximum(hidden @ k1[e] + b1[e], 0)
        np.testing.assert_allclose(y[:, e, :], expected, rtol=1e-5, atol=1e-6)


def test_experts_start_different_even_with_seeded_initializer():
    bank = ExpertBank(num_experts=3, units=[4],
                      kernel_initializer=keras.initializers.GlorotUniform(seed=1))
    bank.build((None, 6))
    kernel = ops.convert_to_numpy(bank.kernels[0])
    assert not np.allclose(kernel[0], kernel[1])
    assert not np.allclose(kernel[1], kernel[2])
    # Glorot range of one expert's (6, 4) kernel, not of the stacked tensor.
    limit = np.sqrt(6 / (6 + 4))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > limit / 2


def test_softmax_gate_hand_computation_and_temperature():
    gate = SoftmaxGate(num_experts=3, temperature=0.5)
    x = np.array([[1.0, 2.0]], dtype="float32")
    y = ops.convert_to_numpy(gate(x))
    logits = x @ ops.convert_to_numpy(gate.kernel) + ops.convert_to_numpy(gate.bias)
    expected = np.exp(logits / 0.5) / np.exp(logits / 0.5).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


def test_inference_computes_the_gates_together_with_the_separate_gates_values():
    # MMoE's gates are one matmul and one softmax at inference (stacked_gates), each on its own in
    # training; both must give the same gate values and mixtures.
    moe = MixtureOfExperts(num_gates=3, num_experts=4, expert={"units": [6]}, gate_temperature=0.7)
    x = np.random.default_rng(3).normal(size=(257, 9)).astype("float32")
    mixtures, gates = (ops.convert_to_numpy(t) for t in moe(x, training=False))
    separate = np.stack([ops.convert_to_numpy(gate(x)) for gate in moe.gates], axis=1)
    np.testing.assert_allclose(gates, separate, rtol=1e-6, atol=1e-7)
    trained_mixtures, trained_gates = (ops.convert_to_numpy(t) for t in moe(x, training=True))
    np.testing.assert_array_equal(trained_gates, separate)
    np.testing.assert_allclose(mixtures, trained_mixtures, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("make,message", [
    (lambda: ExpertBank(num_experts=0), "num_experts"),
    (lambda: SoftmaxGate(num_experts=2, temperature=0), "temperature"),
    (lambda: MLP([4, -1]), "units"),
    (lambda: MLP([4], dropout=1.5), "dropout"),
    (lambda: TaskTower(output_units=0), "output_units"),
    (lambda: MixtureOfExperts(num_gates=0), "num_gates"),
])
def test_bad_arguments_name_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_mixture_of_experts_gates_sum_to_one_and_mix():
    moe = MixtureOfExperts(num_gates=2, num_experts=4, expert={"units": [3]})
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    mixtures, gates = (ops.convert_to_numpy(t) for t in moe(x))
    assert mixtures.shape == (6, 2, 3) and gates.shape == (6, 2, 4)
    np.testing.assert_allclose(gates.sum(axis=-1), 1.0, rtol=1e-5)
    experts = ops.convert_to_numpy(moe.experts(x))
    np.testing.assert_allclose(mixtures, np.einsum("bge,beu->bgu", gates, experts), rtol=1e-5, atol=1e-6)
    assert moe.count_params() == 4 * (5 * 3 + 3) + 2 * (5 * 4 + 4)


def test_feature_embedding_shares_tables_and_mean_pools(layout, inputs):
    layer = FeatureEmbedding(layout)
    y = ops.convert_to_numpy(layer(inputs))
    assert y.shape == (64, 5 + 4 + 4 + 3 + 4) == (64, layer.output_dim)
    # Two tables only, although three features read "items".
    assert len(layer.weights) == 2
    assert layer.count_params() == 12 * 4 + 7 * 3
    items = ops.convert_to_numpy(layer.tables["items"])
    np.testing.assert_allclose(y[:, 5:9], items[inputs["item"]])
    np.testing.assert_allclose(y[:, 9:13], items[inputs["last_item"]])
    ids = inputs["genres"]
    mask = (ids > 0)[..., None]
    pooled = (items[ids] * mask).sum(1) / np.maximum(mask.sum(1), 1)
    np.testing.assert_allclose(y[:, 16:], pooled, rtol=1e-5, atol=1e-6)


def test_feature_embedding_padding_only_row_is_zero(layout, inputs):
    inputs = dict(inputs)
    inputs["genres"] = np.zeros((64, 3), dtype="int32")
    y = ops.convert_to_numpy(FeatureEmbedding(layout)(inputs))
    np.testing.assert_array_equal(y[:, 16:], 0.0)


def test_feature_embedding_rejects_unknown_table(layout):
    layout["categorical"]["shop"] = "shops"
    with pytest.raises(ValueError, match="shops"):
        FeatureEmbedding(layout)


def test_feature_embedding_config_round_trip(layout):
    layer = FeatureEmbedding(layout)
    assert FeatureEmbedding.from_config(layer.get_config()).get_config() == layer.get_config()


def test_cross_expert_matches_the_dcn_v2_formula():
    """x1 = x0 * (W x0 + b) + x0, then the expert's own relu layer."""
    bank = CrossExpertBank(num_experts=2, units=[3], num_cross_layers=1)
    x0 = np.random.default_rng(3).normal(size=(5, 4)).astype("float32")
    y = ops.convert_to_numpy(bank(x0))
    for e in range(2):
        dense = bank.crosses[e]
        weights = {w.path.split("/")[-1]: ops.convert_to_numpy(w) for w in dense.weights}
        kernel, bias = weights["kernel"], weights["bias"]
        x1 = x0 * (x0 @ kernel + bias) + x0
        mlp_kernel = ops.convert_to_numpy(bank.mlp.kernels[0])[e]
        mlp_bias = ops.convert_to_numpy(bank.mlp.biases[0])[e]
        np.testing.assert_allclose(y[:, e], np.maximum(x1 @ mlp_kernel + mlp_bias, 0), rtol=1e-5, atol=1e-6)


def test_expert_bank_takes_one_input_per_expert():
    bank = ExpertBank(num_experts=2, units=[3])
    x = np.random.default_rng(4).normal(size=(5, 2, 4)).astype("float32")
    y = ops.convert_to_numpy(bank(x))
    kernels = ops.convert_to_numpy(bank.kernels[0])
    for e in range(2):
        np.testing.assert_allclose(y[:, e], np.maximum(x[:, e] @ kernels[e], 0), rtol=1e-5, atol=1e-6)


def test_unknown_expert_kind_is_refused():
    with pytest.raises(ValueError, match=r"`expert.kind` must be one of \['mlp', 'dcn'\]"):
        ExpertSpec(kind="transformer")


def test_expert_spec_builds_the_bank_of_its_kind():
    assert type(ExpertSpec().build(2)) is ExpertBank
    bank = ExpertSpec.get({"kind": "dcn", "units": [3], "num_cross_layers": 1, "projection_dim": 2}).build(2, "e")
    assert type(bank) is CrossExpertBank and bank.projection_dim == 2 and bank.units == [3] and bank.name == "e"
    assert ExpertSpec.from_config(ExpertSpec(units=[4, 2]).get_config()) == ExpertSpec(units=[4, 2])


def test_specs_fold_the_flat_keys_of_0_1():
    kwargs = {"expert_units": [8], "expert_kind": "dcn", "cross_projection_dim": 4, "name": "x"}
    assert ExpertSpec.get(None, kwargs) == ExpertSpec(kind="dcn", units=[8], projection_dim=4)
    assert kwargs == {"name": "x"}  # the flat keys are consumed, the rest is left
    assert BottomSpec.get({"units": [8]}, {"bottom_dropout": 0.2}) == BottomSpec(units=[8], dropout=0.2)
    # A flat key overrides the spec's field (`model.expert_units=[4]` on a config with `expert:`).
    assert ExpertSpec.get({"units": [8], "dropout": 0.1}, {"expert_units": [4]}) == ExpertSpec(units=[4], dropout=0.1)
    # Old layer configs load.
    moe = MixtureOfExperts.from_config({"num_gates": 2, "num_experts": 3, "expert_units": [4], "expert_dropout": 0.1})
    assert moe.expert_spec == ExpertSpec(units=[4], dropout=0.1)


@pytest.mark.parametrize("make,message", [
    (lambda: ExpertSpec(units=[]), "expert.units"),
    (lambda: ExpertSpec(dropout=1.0), "expert.dropout"),
    (lambda: ExpertSpec(kind="dcn", projection_dim=0), "expert.projection_dim"),
    (lambda: ExpertSpec.get({"unit": [4]}), "no field 'unit'"),
    (lambda: ExpertSpec.get([4]), "`expert` must be a ExpertSpec or a dict"),
    (lambda: BottomSpec(dropout=-0.1), "bottom.dropout"),
])
def test_bad_specs_name_the_field(make, message):
    with pytest.raises(ValueError, match=message):
        make()

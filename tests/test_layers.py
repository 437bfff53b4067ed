"""Contract tests of every layer: hand-computed outputs, shapes, weight counts, bad arguments,
config round trip and .keras save/reload."""

import keras
import numpy as np
import pytest
from keras import ops

from mtrec.layers import MLP, CrossExpertBank, ExpertBank, FeatureEmbedding, MixtureOfExperts, SoftmaxGate, TaskTower


def _roundtrip(layer, x, tmp_path):
    """Wraps the layer in a model, saves to .keras, reloads; returns (before, after) outputs."""
    inp = keras.Input(shape=x.shape[1:])
    out = layer(inp)
    if isinstance(out, (tuple, list)):
        out = list(out)
    model = keras.Model(inp, out)
    path = tmp_path / "layer.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    return model.predict(x, verbose=0), reloaded.predict(x, verbose=0)


def _assert_same(a, b):
    for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


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
def test_layer_contract(make, in_shape, out_shape, weights, tmp_path):
    layer = make()
    x = np.random.default_rng(1).normal(size=in_shape).astype("float32")
    y = layer(x)
    assert tuple(y.shape) == out_shape
    assert layer.count_params() == weights
    assert tuple(layer.compute_output_shape(in_shape)) == out_shape
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    before, after = _roundtrip(make(), x, tmp_path)
    _assert_same(before, after)


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


def test_mixture_of_experts_gates_sum_to_one_and_mix(tmp_path):
    moe = MixtureOfExperts(num_gates=2, num_experts=4, expert_units=[3])
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    mixtures, gates = (ops.convert_to_numpy(t) for t in moe(x))
    assert mixtures.shape == (6, 2, 3) and gates.shape == (6, 2, 4)
    np.testing.assert_allclose(gates.sum(axis=-1), 1.0, rtol=1e-5)
    experts = ops.convert_to_numpy(moe.experts(x))
    np.testing.assert_allclose(mixtures, np.einsum("bge,beu->bgu", gates, experts), rtol=1e-5, atol=1e-6)
    assert moe.count_params() == 4 * (5 * 3 + 3) + 2 * (5 * 4 + 4)
    before, after = _roundtrip(MixtureOfExperts(num_gates=2, num_experts=4, expert_units=[3]), x, tmp_path)
    _assert_same(before, after)


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
    from mtrec.layers import make_expert_bank
    with pytest.raises(ValueError, match="expert_kind must be one of"):
        make_expert_bank("transformer", 2, [4])

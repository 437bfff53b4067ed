"""NumericEmbedding: a learned embedding of one numeric column (Gorishniy et al., 2022)."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable

KINDS = ("quantile", "periodic")


@serializable
class NumericEmbedding(keras.layers.Layer):
    """Embeds a scalar feature: piecewise-linear (quantile) or periodic (PLR) encoding, then Linear (+ ReLU).

    From "On Embeddings for Numerical Features in Tabular Deep Learning"
    (Gorishniy, Rubachev, Babenko, 2022).

    - `"quantile"` (Q-L / Q-LR): with bucket edges `b_0 < ... < b_T`, the
      piecewise-linear encoding is `e_t = clip((x - b_{t-1}) / (b_t -
      b_{t-1}), 0, 1)` for each bucket `t = 1..T`, except that the first
      bucket is not clipped below and the last not clipped above (values
      beyond the training range extrapolate linearly).
    - `"periodic"` (PLR): `v = [sin(2 pi c x), cos(2 pi c x)]` with `c`
      trainable frequencies initialised from N(0, sigma).

    Args:
        kind: `"quantile"` or `"periodic"`.
        dim: int. Width of the output.
        edges: list of floats, strictly increasing, at least 2 (`"quantile"`).
            The bucket edges, in the units of the input (mtrec: the
            standardized value). They are part of the config, so a saved
            model reloads with them.
        frequencies: int. Number of frequencies (`"periodic"`). Defaults to
            `16`.
        sigma: float. Standard deviation of the frequencies' initialisation
            (`"periodic"`). Defaults to `1.0`.
        relu: bool. A ReLU after the linear layer. Defaults to `True`.
        **kwargs: base `Layer` arguments.

    Input shape: `(batch,)` or `(batch, 1)`.
    Output shape: `(batch, dim)`.
    """

    def __init__(self, kind: str, dim: int, edges: list[float] | None = None, frequencies: int = 16,
                 sigma: float = 1.0, relu: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {list(KINDS)}. Received: kind={kind!r}")
        self.kind = kind
        self.dim = check_positive_int(dim, "dim")
        self.relu = bool(relu)
        self.frequencies = check_positive_int(frequencies, "frequencies")
        self.sigma = float(sigma)
        self.edges = None
        if kind == "quantile":
            edges = [float(e) for e in (edges or [])]
            if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
                raise ValueError(f"`edges` must be at least 2 strictly increasing numbers for a quantile "
                                 f"embedding. Received: edges={edges!r}")
            self.edges = edges
        self.linear = keras.layers.Dense(dim, name="linear", dtype=self.dtype_policy)

    @property
    def encoding_dim(self) -> int:
        """Width of the encoding before the linear layer."""
        return len(self.edges) - 1 if self.kind == "quantile" else 2 * self.frequencies

    def build(self, input_shape: Any = None) -> None:
        if self.kind == "periodic":
            self.coefficients = self.add_weight(
                name="frequencies", shape=(self.frequencies,),
                initializer=keras.initializers.RandomNormal(stddev=self.sigma))
        self.linear.build((None, self.encoding_dim))
        self.built = True

    def encode(self, inputs: Tensor) -> Tensor:
        """The encoding before the linear layer: `(batch, encoding_dim)`."""
        x = ops.reshape(ops.cast(inputs, self.compute_dtype), (-1, 1))
        if self.kind == "periodic":
            angles = (2.0 * math.pi) * x * ops.expand_dims(ops.cast(self.coefficients, self.compute_dtype), 0)
            return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
        edges = np.asarray(self.edges, dtype="float64")
        buckets = len(edges) - 1
        lower = ops.convert_to_tensor(edges[:-1][None, :], dtype=self.compute_dtype)
        width = ops.convert_to_tensor(np.diff(edges)[None, :], dtype=self.compute_dtype)
        ratio = (x - lower) / width
        # The first bucket is open below, the last open above: extrapolate instead of saturating.
        lo, hi = np.zeros((1, buckets)), np.ones((1, buckets))
        lo[0, 0], hi[0, -1] = -np.inf, np.inf
        lo = ops.convert_to_tensor(lo, dtype=self.compute_dtype)
        hi = ops.convert_to_tensor(hi, dtype=self.compute_dtype)
        return ops.minimum(ops.maximum(ratio, lo), hi)

    def call(self, inputs: Tensor) -> Tensor:
        out = self.linear(self.encode(inputs))
        return ops.relu(out) if self.relu else out

    def compute_output_shape(self, input_shape: Any) -> Shape:
        return (input_shape[0], self.dim)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "kind": self.kind, "dim": self.dim, "relu": self.relu}
        if self.kind == "quantile":
            config["edges"] = list(self.edges)
        else:
            config.update(frequencies=self.frequencies, sigma=self.sigma)
        return config

"""CrossExpertBank: DCN-v2 experts (a cross network, then an MLP), several side by side."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
from keras_rs.layers import FeatureCross

from mtrec.layers.expert_bank import ExpertBank
from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable


@serializable
class CrossExpertBank(keras.layers.Layer):
    """`num_experts` DCN-v2 experts (Wang et al. 2021, "stacked" structure) on the same input.

    Each expert applies `num_cross_layers` cross layers of its own,
    `x_{l+1} = x_0 * (W_l x_l + b_l) + x_l` (keras-rs `FeatureCross`), which
    model explicit bounded-degree feature interactions, then an MLP of
    `units`, so its output has the same shape as an MLP expert's and the
    two kinds can be swapped behind the same gates.

    Args:
        num_experts: int. Number of experts. Defaults to `8`.
        units: list of int. Widths of the MLP after the cross layers.
            Defaults to `[16]`.
        num_cross_layers: int. Cross layers per expert. Defaults to `2`.
        projection_dim: int or None. Rank of the low-rank cross kernels
            (`W = U V`, DCN-Mix's cost saving); None for full-rank kernels.
            Defaults to `None`.
        **kwargs: the MLP's `ExpertBank` arguments (`activation`, `dropout`,
            `kernel_initializer`, `kernel_regularizer`), then base `Layer`
            arguments.

    Input shape: `(batch, features)`.
    Output shape: `(batch, num_experts, units[-1])`.
    """

    def __init__(
        self,
        num_experts: int = 8,
        units: list[int] = (16,),
        num_cross_layers: int = 2,
        projection_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        mlp_arguments = {k: kwargs.pop(k) for k in ExpertBank.EXPERT_ARGUMENTS if k in kwargs}
        super().__init__(**kwargs)
        self.num_experts = check_positive_int(num_experts, "num_experts")
        self.num_cross_layers = check_positive_int(num_cross_layers, "num_cross_layers")
        self.projection_dim = None if projection_dim is None else check_positive_int(
            projection_dim, "projection_dim")
        # Flat, expert-major (expert e's layers are [e * L, (e + 1) * L)): a flat
        # list of layers is what Keras tracks for saving.
        self.crosses = [
            FeatureCross(projection_dim=self.projection_dim, dtype=self.dtype_policy, name=f"cross_{e}_{layer}")
            for e in range(self.num_experts) for layer in range(self.num_cross_layers)
        ]
        self.mlp = ExpertBank(num_experts, units, **mlp_arguments, dtype=self.dtype_policy, name="mlp")
        self.units = self.mlp.units

    def build(self, input_shape: Shape) -> None:
        # FeatureCross creates its Dense sublayers in build() but their weights
        # only on first call; a symbolic (functional) call may never run it,
        # so run each once on a dummy row to create every weight now.
        probe = ops.zeros((1, int(input_shape[-1])), dtype=self.compute_dtype)
        for cross in self.crosses:
            cross(probe, probe)
        self.mlp.build((input_shape[0], self.num_experts, input_shape[-1]))
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        crossed = []
        for e in range(self.num_experts):
            x = inputs
            for cross in self.crosses[e * self.num_cross_layers:(e + 1) * self.num_cross_layers]:
                x = cross(inputs, x)
            crossed.append(x)
        return self.mlp(ops.stack(crossed, axis=1), training=training)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], self.num_experts, self.units[-1])

    def get_config(self) -> dict[str, Any]:
        mlp = self.mlp.get_config()
        return {
            **super().get_config(),
            **{key: mlp[key] for key in ExpertBank.EXPERT_ARGUMENTS},
            "num_cross_layers": self.num_cross_layers,
            "projection_dim": self.projection_dim,
        }

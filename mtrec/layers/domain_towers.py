"""DomainTowers: one task tower per domain, each row read from its own domain's tower."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mtrec.layers.task_tower import TaskTower
from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable


@serializable
class DomainTowers(keras.layers.Layer):
    """A task's tower, once per domain: row i gets the output of tower `domain_ids[i]`.

    Multi-domain models (`MultiTaskModel(domain_towers=COLUMN)`): the shared
    body reads every domain; only the last layers, where two domains may need
    opposite mappings of the same representation, are separate.

    Args:
        num_domains: int. How many towers: the domain column's vocabulary size
            (ids `0 .. num_domains - 1`, padding and out-of-vocabulary ids included).
        output_units, output_activation, units, activation, dropout: those of
            each `TaskTower`.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: `(batch, width)` representation of the task.
        domain_ids: `(batch,)` or `(batch, 1)` integer domain ids.

    Output shape: `(batch, output_units)`.
    """

    def __init__(self, num_domains: int, output_units: int, output_activation: str | None = None,
                 units: list[int] = (8,), activation: str = "relu", dropout: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_domains = check_positive_int(num_domains, "num_domains")
        self.tower_kwargs = {"output_units": output_units, "output_activation": output_activation,
                             "units": list(units), "activation": activation, "dropout": float(dropout)}
        self.towers = [TaskTower(**self.tower_kwargs, dtype=self.dtype_policy, name=f"domain_{d}")
                       for d in range(self.num_domains)]
        self.output_units = self.towers[0].output_units

    def build(self, inputs_shape: Shape, domain_ids_shape: Shape | None = None) -> None:
        for tower in self.towers:
            tower.build(inputs_shape)
        self.built = True

    def call(self, inputs: Tensor, domain_ids: Tensor, training: bool | None = None) -> Tensor:
        # Every tower runs on every row (D small), then a one-hot sum picks each row's own:
        # x * 1 + y * 0 is exactly x, so a row's output is bit-equal to its tower's.
        outputs = ops.stack([tower(inputs, training=training) for tower in self.towers], axis=1)
        ids = ops.reshape(ops.cast(domain_ids, "int32"), (-1,))
        pick = ops.one_hot(ids, self.num_domains, dtype=outputs.dtype)
        return ops.sum(outputs * ops.expand_dims(pick, -1), axis=1)

    def compute_output_shape(self, inputs_shape: Shape, domain_ids_shape: Shape | None = None) -> Shape:
        return tuple(inputs_shape[:-1]) + (self.output_units,)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_domains": self.num_domains, **self.tower_kwargs}


def check_domain_towers(column: Any, features: list, where: str = "model.domain_towers") -> None:
    """Checks at config time that `domain_towers` names one declared categorical feature.

    The vocabulary size is known only once the encoder is fit; the model refuses
    a column with more than `MultiTaskModel.MAX_DOMAINS` ids when it is built.

    Args:
        column: the config value (a feature name, or None).
        features: the parsed feature specs.
        where: the config key, for messages.

    Raises:
        ConfigError: naming the key and the column, with the features it may name.
    """
    from mtrec.errors import ConfigError
    from mtrec.features import CategoricalFeature

    if column is None:
        return
    categorical = [f.name for f in features if isinstance(f, CategoricalFeature)]
    if not isinstance(column, str):
        raise ConfigError(f"Config key '{where}' must be the name of one categorical feature, e.g. segment. "
                          f"Received: {column!r}.")
    if column not in categorical:
        declared = {f.name: f.kind for f in features}
        what = (f"a {declared[column]} feature" if column in declared else "not a declared feature")
        raise ConfigError(f"Config key '{where}': '{column}' is {what}; one tower per domain needs a "
                          f"declared categorical feature (kind: categorical). Categorical features: "
                          f"{categorical}.")

"""MultiTaskModel: the base every mtrec model builds on.

A model is: feature embedding -> body (what differs between models) -> one
tower per task. Subclasses implement `_task_representations`, which returns
one representation per task and, for gated models, the gate weights. The
bodies come in two families: bottom MLPs (`BottomModel`: SingleTask,
SharedBottom, SoftSharing, CrossStitch) and gated experts (`GatedModel`:
MMoE, OMoE, CGC, PLE).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from mtrec.errors import ConfigError
from mtrec.layers.domain_towers import DomainTowers
from mtrec.layers.feature_embedding import FeatureEmbedding
from mtrec.layers.task_tower import TaskTower
from mtrec.tasks import Task, chain_order, task_from_config
from mtrec.types import Tensor


class MultiTaskModel(keras.Model):
    """Base class: embeddings, task towers, per-task outputs and gate access.

    Args:
        tasks: list of `Task` objects or task config dicts (with `kind`).
        feature_layout: dict. `FeatureEncoder.layout()`.
        tower_units: list of int. Hidden widths of each task tower.
            Defaults to `[8]`.
        tower_activation: str. Defaults to `"relu"`.
        tower_dropout: float. Defaults to `0.0`.
        domain_towers: str or None. Multi-domain models: the name of a
            categorical feature with a small vocabulary (at most
            `MAX_DOMAINS` ids, padding and out-of-vocabulary included). Each
            task then has one tower per id of that column (`DomainTowers`)
            and each row's prediction comes from its own domain's tower; the
            body stays shared. Defaults to `None` (one tower per task).
        **kwargs: base `Model` arguments (e.g. `name`).

    Calling the model on a feature dict returns `{task name: prediction}`.
    """

    #: Whether the model has gates (`gate_weights` is available).
    gated: bool = False
    #: The most towers per task `domain_towers` may ask for (each one runs on every row).
    MAX_DOMAINS: int = 64

    def __init__(
        self,
        tasks: list[Task | dict[str, Any]],
        feature_layout: dict[str, Any],
        tower_units: list[int] = (8,),
        tower_activation: str = "relu",
        tower_dropout: float = 0.0,
        domain_towers: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tasks = [task_from_config(t, f"tasks[{i}]") for i, t in enumerate(tasks)]
        if not self.tasks:
            raise ValueError("`tasks` must name at least one task. Received: tasks=[]")
        self.task_names = [t.name for t in self.tasks]
        self._chain_order = chain_order(self.tasks)
        self.feature_layout = copy.deepcopy(dict(feature_layout))
        self.tower_units = list(tower_units)
        self.tower_activation = tower_activation
        self.tower_dropout = float(tower_dropout)
        self.domain_towers = domain_towers or None
        num_domains = self._num_domains() if self.domain_towers else None
        self.towers = [
            TaskTower(
                t.output_units, t.output_activation, units=self.tower_units,
                activation=tower_activation, dropout=tower_dropout, dtype=self.dtype_policy,
                name=f"tower_{t.name}",
            ) if num_domains is None else DomainTowers(
                num_domains, t.output_units, t.output_activation, units=self.tower_units,
                activation=tower_activation, dropout=tower_dropout, dtype=self.dtype_policy,
                name=f"tower_{t.name}",
            )
            for t in self.tasks
        ]

    def _num_domains(self) -> int:
        """The `domain_towers` column's vocabulary size (its table's `input_dim`), checked."""
        column = self.domain_towers
        categorical = self.feature_layout.get("categorical", {})
        if column not in categorical:
            raise ConfigError(f"Config key 'model.domain_towers': '{column}' is not a categorical feature of "
                              f"this model. Categorical features: {list(categorical)}.")
        size = int(self.feature_layout["tables"][categorical[column]]["input_dim"])
        if size > self.MAX_DOMAINS:
            raise ConfigError(f"Config key 'model.domain_towers': '{column}' has {size} ids (padding and "
                              f"out-of-vocabulary included), more than {self.MAX_DOMAINS} towers per task. "
                              f"Use a column with fewer values, or condition the gates on it instead "
                              f"(model.gate_inputs).")
        return size

    # -- to implement -------------------------------------------------------
    def _task_representations(
        self, inputs: dict[str, Tensor], training: bool | None
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Returns (one representation per task, gate weights by name)."""
        raise NotImplementedError

    # -- Keras --------------------------------------------------------------
    def _make_embedding(self, name: str = "embedding") -> FeatureEmbedding:
        return FeatureEmbedding(self.feature_layout, dtype=self.dtype_policy, name=name)

    def call(self, inputs: dict[str, Tensor], training: bool | None = None) -> dict[str, Tensor]:
        representations, _ = self._task_representations(inputs, training)
        # Task.finish_output: a regression task's standardization undone (z * sd + mean), a count's
        # exp; constants from the task's config, so scoring and export see label units.
        if self.domain_towers:
            domains = inputs[self.domain_towers]
            heads = [tower(rep, domains, training=training) for tower, rep in zip(self.towers, representations)]
        else:
            heads = [tower(rep, training=training) for tower, rep in zip(self.towers, representations)]
        outputs = {task.name: task.finish_output(head) for task, head in zip(self.tasks, heads)}
        # ESMM chains: a task "after" another outputs p(after) * p(this | after);
        # its tower only ever models the conditional.
        for task in self._chain_order:
            parent = getattr(task, "after", None)
            if parent is not None:
                outputs[task.name] = outputs[parent] * outputs[task.name]
        return outputs

    @property
    def chained_tasks(self) -> dict[str, str]:
        """{task: the task it comes after} for every ESMM-chained task."""
        return {t.name: t.after for t in self.tasks if getattr(t, "after", None)}

    def compile_for_tasks(self, optimizer: Any = "adam", **kwargs: Any) -> None:
        """Compiles with each task's masked loss, static weight and metrics.

        Args:
            optimizer: a Keras optimizer or its name.
            **kwargs: further `compile` arguments (e.g. `steps_per_execution`).
        """
        self.compile(
            optimizer=optimizer,
            loss={t.name: t.make_loss() for t in self.tasks},
            loss_weights={t.name: float(t.weight) for t in self.tasks},
            metrics={t.name: t.make_metrics() for t in self.tasks},
            **kwargs,
        )

    def train_step(self, *args: Any, **kwargs: Any) -> Any:
        """Keras' train step, or that of an attached task weighting strategy (`mtrec.weighting`)."""
        weighting = getattr(self, "_task_weighting", None)
        if weighting is not None and weighting.custom_step:
            return weighting.train_step(self, *args, **kwargs)
        return super().train_step(*args, **kwargs)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                     training: bool = True) -> Any:
        """Keras' loss; on training steps an attached loss-level weighting strategy sets its gradient.

        Loss-level strategies (uncertainty, DWA) work inside Keras' own train step, on every backend
        (`mtrec.weighting.WeightingStrategy.reweight`); the value, logged as `loss`, stays Keras'.
        """
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        weighting = getattr(self, "_task_weighting", None)
        if training and weighting is not None and weighting.loss_level:
            loss = weighting.reweight(self, loss, y, y_pred, sample_weight)
        return loss

    def save_weights(self, filepath: Any, overwrite: bool = True, **kwargs: Any) -> None:
        """Keras's `save_weights`; under `jax.distributed` each process writes its own full copy.

        A variable replicated over several processes' devices cannot be fetched whole (JAX refuses
        non-addressable arrays); every process holds all of it, so its local copy is written.
        """
        with _process_local_values([*self.variables, *getattr(self.optimizer, "variables", [])]):
            super().save_weights(filepath, overwrite=overwrite, **kwargs)

    def get_weights(self) -> list[np.ndarray]:
        """Keras's `get_weights`; under `jax.distributed`, this process's full copy (see `save_weights`)."""
        with _process_local_values(self.weights):
            return super().get_weights()

    # -- gates --------------------------------------------------------------
    def gate_weights(self, inputs: dict[str, Any], batch_size: int = 8192) -> dict[str, np.ndarray]:
        """Returns the gate weights per example, per task, per expert.

        This is the one documented call for gate analysis. Keys are
        `"<task>"` for single-level models (MMoE; OMoE repeats its one gate
        under every task name) and `"<level>/<task>"` (or
        `"<level>/shared"`) for stacked models; values are float arrays of
        shape `(num_examples, num_experts)` whose rows sum to 1 (float32, also
        under a mixed-precision policy).

        The forward pass is compiled once per model (Keras' own predict
        loop: a `tf.function` on TensorFlow, `jax.jit` on JAX) and reused by
        later calls; it prints nothing.

        Args:
            inputs: the encoded feature dict (`FeatureEncoder.transform`).
            batch_size: rows per forward pass.

        Raises:
            TypeError: the model has no gates.
        """
        if not self.gated:
            raise TypeError(f"{type(self).__name__} has no gates; gated models: MMoE, OMoE, CGC, PLE.")
        inputs = dict(inputs)
        if not self.built:
            self({k: v[:1] for k, v in inputs.items()})
        reader = self.__dict__.get("_gate_reader")
        if reader is None:
            # Kept out of Keras' attribute tracking: the reader is not part of the model's state.
            reader = self.__dict__["_gate_reader"] = _GateReader(self)
        gates = reader.predict(inputs, batch_size=batch_size, verbose=0)
        return {key: np.asarray(value, dtype="float32") for key, value in gates.items()}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "tasks": [t.get_config() for t in self.tasks],
            "feature_layout": copy.deepcopy(self.feature_layout),
            "tower_units": self.tower_units,
            "tower_activation": self.tower_activation,
            "tower_dropout": self.tower_dropout,
            "domain_towers": self.domain_towers,
        }


@contextlib.contextmanager
def _process_local_values(variables: list[Any]) -> Iterator[None]:
    """Within the block, variables spanning other processes' devices hold this process's copy."""
    swapped = []
    for variable in variables:
        value = getattr(variable, "_value", None)
        if value is not None and not getattr(value, "is_fully_addressable", True):
            swapped.append((variable, value))
            variable._value = np.asarray(value.addressable_data(0))
    try:
        yield
    finally:
        for variable, value in swapped:
            variable._value = value


class _GateReader(keras.Model):
    """A view of a gated model whose outputs are its gates, so `predict` compiles the gate pass."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__(name=f"{model.name}_gates")
        self.source = model

    def call(self, inputs: dict[str, Tensor], training: bool | None = None) -> dict[str, Tensor]:
        return self.source._task_representations(inputs, training=False)[1]

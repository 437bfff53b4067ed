"""WeightingStrategy: turns per-task losses (or per-task gradients) into one training update.

Three families share this base:

* `static` keeps Keras' own train step (the compiled loss weights) and only
  logs the weights.
* Loss-level strategies (`uncertainty`, `dwa`) compute a weighted objective
  from the per-task losses; one backward pass per step. They run inside
  Keras' own train step on every backend: `MultiTaskModel.compute_loss`
  calls `reweight`, and their variables live in a `TaskLossWeights` layer
  that the model owns (so JAX's pure step sees and updates them).
* Gradient-level strategies (`pcgrad`, `gradnorm`, `mgda`, subclasses of
  `GradientWeighting`) need each task's gradient of the shared variables:
  one backward pass per task. With `every_k_steps = k > 1` they do that only
  every k-th step and take one ordinary backward pass of the weighted loss
  (with their latest weights) in between.

Gradient-level strategies run mtrec's own train step (TensorFlow backend
only); every strategy is attached to a compiled `MultiTaskModel` with `attach`. Task losses enter
already multiplied by their static `Task.weight`; a strategy's weights act on
top. The logged training `loss` stays the static-weighted sum (the same
quantity as `val_loss`), so the two remain comparable whatever the strategy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np

from mtrec.errors import ConfigError
from mtrec.types import Tensor
from mtrec.weighting.gradients import (
    check_gradient_backend, densify, flatten, split_variables, task_losses, unflatten,
)


class WeightingStrategy:
    """Base of every task weighting strategy.

    Subclasses set `kind`, and loss-level ones implement `objective`.
    Constructor arguments are the strategy's config keys (`weighting.<key>`).
    """

    #: Config name (`weighting.kind`).
    kind: ClassVar[str] = ""
    #: Whether the strategy needs mtrec's train step (False: Keras' own).
    custom_step: ClassVar[bool] = True
    #: Whether the strategy needs per-task gradients.
    gradient_level: ClassVar[bool] = False
    #: Whether the strategy reweights the loss in Keras' own step (`reweight`; any backend).
    loss_level: ClassVar[bool] = False

    def __init__(self) -> None:
        self.task_names: list[str] = []
        self.model: Any = None

    # -- set-up -------------------------------------------------------------
    def attach(self, model: Any, sample_inputs: dict[str, Any], learning_rate: float = 1e-3,
               seed: int = 0) -> WeightingStrategy:
        """Binds the strategy to a compiled model; `fit` then trains with it.

        Args:
            model: a compiled `MultiTaskModel`.
            sample_inputs: encoded training features (a few rows are used to
                tell shared from task-specific variables).
            learning_rate: the run's learning rate (a default for the
                strategy's own parameters).
            seed: seeds any randomness of the strategy.

        Returns:
            self.

        Raises:
            ConfigError: the Keras backend does not support the strategy.
        """
        if self.custom_step:
            check_gradient_backend(f"Task weighting '{self.kind}'")
        if getattr(model, "optimizer", None) is None:
            raise ValueError("Compile the model before attaching a weighting strategy.")
        self.model = model
        self.task_names = list(model.task_names)
        n = len(self.task_names)
        self.static_weights = np.array([float(t.weight) for t in model.tasks], dtype="float32")
        self._loss_fns = {t.name: t.make_loss() for t in model.tasks}
        # Sum and count of the weights used at each step of the current epoch.
        self._weight_sum = keras.Variable(np.zeros(n, "float32"), trainable=False, name="weight_sum")
        self._weight_steps = keras.Variable(0.0, trainable=False, name="weight_steps")
        self._build(model, sample_inputs, learning_rate, seed)
        if self.loss_level:
            self._own_variables(model, self._initial_values(learning_rate), self._trainable_values)
        object.__setattr__(model, "_task_weighting", self)  # plain attribute: not saved with the model
        model.train_function = None  # retrace with this strategy's step
        return self

    def _build(self, model: Any, sample_inputs: dict[str, Any], learning_rate: float, seed: int) -> None:
        """Hook: creates the strategy's variables."""

    # -- loss-level strategies --------------------------------------------------
    #: Loss-level strategies: whether the model's optimizer trains `self.values`.
    _trainable_values: ClassVar[bool] = False

    def _initial_values(self, learning_rate: float) -> np.ndarray:
        """Loss-level strategies: the starting `(num_tasks,)` values of `self.values`."""
        return np.ones(len(self.task_names), "float32")

    def _own_variables(self, model: Any, initial: np.ndarray, trainable: bool) -> None:
        """Gives the model a `TaskLossWeights` layer holding this strategy's per-step state."""
        from mtrec.weighting.loss_weights import TaskLossWeights

        layer = getattr(model, "_task_loss_weights", None)
        if layer is not None:  # a strategy attached again: its predecessor's variables start afresh
            if tuple(layer.values.shape) != initial.shape or layer.values.trainable != trainable:
                raise ValueError(f"Model '{model.name}' already has the variables of another loss-level "
                                 f"weighting strategy ('{layer.name}'); build a new model for this one.")
            layer.values.assign(initial)
            layer.weight_sum.assign(np.zeros_like(initial))
            layer.weight_steps.assign(0.0)
        else:
            layer = TaskLossWeights(initial, trainable, name="task_loss_weights")
            # Tracked by the model, so Keras' step (JAX's pure one too) reads and updates it; a built
            # model's tracker is locked against new state, which this deliberate addition lifts once.
            tracker = model._tracker
            locked = tracker.locked
            tracker.unlock()
            try:
                model._task_loss_weights = layer
            finally:
                if locked:
                    tracker.lock()
        # The same variables under the strategy's names: WeightingState checkpoints them from here.
        self.values = layer.values
        self._weight_sum = layer.weight_sum
        self._weight_steps = layer.weight_steps
        if trainable:
            exclude = getattr(model.optimizer, "exclude_from_weight_decay", None)
            if exclude is not None and not getattr(model.optimizer, "built", False):
                exclude(var_list=[layer.values])  # decoupled weight decay must not pull them to 0

    def reweight(self, model: Any, loss: Tensor, y: Any, y_pred: Any, sample_weight: Any) -> Tensor:
        """Loss-level strategies: Keras' training loss with this strategy's gradient.

        Called by `MultiTaskModel.compute_loss` on training steps. The value
        returned equals `loss` exactly (the static-weighted sum plus the
        model's own losses, logged as `loss` and comparable to `val_loss`);
        its gradient is that of `objective(per-task losses)` plus the model's
        own losses (e.g. SoftSharing's tie).

        Args:
            model: the `MultiTaskModel`.
            loss: Keras' compiled loss of the step.
            y, y_pred, sample_weight: the step's labels, outputs and weights.

        Returns:
            A scalar tensor.
        """
        ops = keras.ops
        raw = task_losses(model, y, y_pred, sample_weight, self._loss_fns)
        losses = ops.stack([ops.cast(raw[n], "float32") * w for n, w in zip(self.task_names, self.static_weights)])
        objective, weights = self.objective(losses)
        extra = [ops.sum(l) for l in model.losses if l is not None]
        if extra:
            objective = objective + ops.sum(ops.stack(extra))
        self._weight_sum.assign_add(ops.cast(weights, "float32"))
        self._weight_steps.assign_add(1.0)
        objective = ops.cast(objective, loss.dtype)
        # Value: exactly `loss` (a - a is 0); gradient: the objective's alone.
        return ops.stop_gradient(loss) + (objective - ops.stop_gradient(objective))

    # -- epoch bookkeeping ----------------------------------------------------
    def current_weights(self) -> np.ndarray:
        """The weights the next step would use, on top of the static ones (ones by default)."""
        return np.ones(len(self.task_names), "float32")

    def reset_epoch(self) -> None:
        """Clears the per-epoch accumulators (called at the start of each epoch)."""
        self._weight_sum.assign(np.zeros(len(self.task_names), "float32"))
        self._weight_steps.assign(0.0)

    def epoch_logs(self) -> dict[str, float]:
        """`{<task>_weight: mean weight used this epoch}` (static weight included)."""
        steps = float(keras.ops.convert_to_numpy(self._weight_steps))
        if steps > 0:
            used = keras.ops.convert_to_numpy(self._weight_sum) / steps
        else:
            used = self.current_weights()
        return {f"{name}_weight": float(w * s)
                for name, w, s in zip(self.task_names, used, self.static_weights)}

    def end_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """Hook called after each epoch with its logs (DWA updates its weights here)."""

    # -- training -----------------------------------------------------------
    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        """Loss-level strategies: the scalar to minimize and the weights used.

        Args:
            losses: `(num_tasks,)` task losses, static weights applied.

        Returns:
            `(objective, weights)`; `weights` has shape `(num_tasks,)`.
        """
        raise NotImplementedError

    def train_step(self, model: Any, data: Any) -> dict[str, Any]:
        """One training step of a gradient-level strategy (TensorFlow): losses, gradients, optimizer, metrics."""
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = list(model.trainable_variables)
        with tf.GradientTape(persistent=True) as tape:
            y_pred = model(x, training=True)
            # The compiled (static-weighted) loss: logged as `loss` and `<task>_loss`.
            logged = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                         training=True)
            raw = task_losses(model, y, y_pred, sample_weight, self._loss_fns)
            # Per-task scalars are sliced inside the tape: gradients of each need the record.
            weighted = [raw[n] * w for n, w in zip(self.task_names, self.static_weights)]
            extra = tf.add_n([tf.reduce_sum(l) for l in model.losses]) if model.losses else None
        grads, weights = self._gradients(tape, weighted, extra, variables)
        del tape
        model.optimizer.apply(grads, variables)
        self._weight_sum.assign_add(tf.cast(weights, "float32"))
        self._weight_steps.assign_add(1.0)
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        model._loss_tracker.update_state(logged, sample_weight=batch)
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _gradients(self, tape: Any, losses: list[Tensor], extra: Tensor | None,
                   variables: list) -> tuple[list, Tensor]:
        """Gradient-level strategies: gradients for `variables` and the weights used."""
        raise NotImplementedError

    # -- config ---------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The strategy's config keys and values (`kind` included)."""
        return {"kind": self.kind}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "kind")
        return f"{type(self).__name__}({args})"


class GradientWeighting(WeightingStrategy):
    """Base of gradient-level strategies: per-task gradients of the shared variables, combined.

    Subclasses implement `combine`, and may override `light_weights` (the
    weights used on the steps between two gradient-level steps) and
    `after_combine` (state updates).

    Args:
        every_k_steps: int. Apply the gradient-level method every k-th step;
            other steps take one ordinary backward pass of the weighted loss,
            with the strategy's latest weights. Defaults to `1` (every step).
    """

    gradient_level = True

    def __init__(self, every_k_steps: int = 1) -> None:
        super().__init__()
        if isinstance(every_k_steps, bool) or not isinstance(every_k_steps, int) or every_k_steps < 1:
            raise ConfigError(f"weighting.every_k_steps must be an integer >= 1. Received: {every_k_steps!r}")
        self.every_k_steps = every_k_steps

    def _build(self, model: Any, sample_inputs: dict[str, Any], learning_rate: float, seed: int) -> None:
        shared, _ = split_variables(model, sample_inputs)
        if not shared:
            import warnings
            warnings.warn(
                f"Model '{model.name}' shares no variables between its tasks; weighting "
                f"'{self.kind}' has nothing to act on and trains like static weights.", stacklevel=3)
        shared_ids = {id(v) for v in shared}
        self._shared_index = [i for i, v in enumerate(model.trainable_variables) if id(v) in shared_ids]
        self._step = keras.Variable(0, dtype="int64", trainable=False, name="weighting_step")
        self._seed = int(seed)

    def light_weights(self) -> Tensor:
        """Weights of the ordinary steps between gradient-level steps (ones by default)."""
        import tensorflow as tf

        return tf.ones(len(self.task_names))

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """Combines per-task gradients of the shared variables.

        Args:
            grads: `(num_tasks, num_shared_values)`, one flattened gradient per
                task (static weights applied).
            losses: `(num_tasks,)` task losses (static weights applied).

        Returns:
            `(shared gradient (num_shared_values,), task weights (num_tasks,))`.
            Each task's own variables get its gradient times its weight.
        """
        raise NotImplementedError

    def _gradients(self, tape: Any, losses: list[Tensor], extra: Tensor | None,
                   variables: list) -> tuple[list, Tensor]:
        import tensorflow as tf

        n = len(self.task_names)
        stacked = tf.stack(losses)
        shared_vars = [variables[i] for i in self._shared_index]
        shared_set = set(self._shared_index)

        def heavy():
            per_task = [densify(tape.gradient(losses[t], variables), variables) for t in range(n)]
            matrix = tf.stack([flatten([g[i] for i in self._shared_index]) for g in per_task])
            shared, weights = self.combine(matrix, stacked)
            shared = unflatten(shared, shared_vars)
            grads, k = [], 0
            for i in range(len(variables)):
                if i in shared_set:
                    grads.append(shared[k])
                    k += 1
                else:
                    grads.append(tf.add_n([weights[t] * per_task[t][i] for t in range(n)]))
            return grads, tf.cast(weights, "float32")

        def light():
            weights = tf.stop_gradient(self.light_weights())
            # output_gradients weights each recorded loss: d(sum_t w_t L_t) in one pass.
            grads = tape.gradient(losses, variables, output_gradients=[weights[t] for t in range(n)])
            return densify(grads, variables), weights

        if self.every_k_steps == 1:
            grads, weights = heavy()
        else:
            grads, weights = tf.cond(tf.equal(self._step % self.every_k_steps, 0), heavy, light)
        self._step.assign_add(1)
        if extra is not None:  # e.g. SoftSharing's L2 tie: added as is
            grads = [g + e for g, e in zip(grads, densify(tape.gradient(extra, variables), variables))]
        return grads, weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "every_k_steps": self.every_k_steps}

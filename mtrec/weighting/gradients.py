"""Per-task gradients of a `MultiTaskModel` and which of its variables the tasks share.

Gradient-level weighting (PCGrad, GradNorm, MGDA) and gradient analysis
(cosines between task gradients) both need, for every task, the gradient of
that task's loss alone. These helpers compute them on the TensorFlow backend.

A variable is *shared* when the outputs of two or more tasks depend on it.
This is decided from the computation graph, not from layer names, so it holds
for every model kind: MMoE experts are shared and its gates are not (gate t
only feeds task t); PLE's task-specific experts of a lower level are shared
when an upper level's shared gate mixes them; in an ESMM chain the earlier
task's tower is shared with the later task (whose output multiplies it);
SingleTask and SoftSharing have no shared variables at all.
"""

from __future__ import annotations

from typing import Any

import keras

from mtrec.errors import ConfigError
from mtrec.types import Tensor

#: Backends on which per-task gradients (and so gradient-level weighting) are implemented.
GRADIENT_BACKENDS = ("tensorflow",)


def check_gradient_backend(what: str = "Per-task gradients") -> None:
    """Raises ConfigError unless the Keras backend supports per-task gradients.

    Args:
        what: the feature that needs them, for the message.
    """
    backend = keras.backend.backend()
    if backend not in GRADIENT_BACKENDS:
        raise ConfigError(
            f"{what} need a custom train step, implemented for the {list(GRADIENT_BACKENDS)} "
            f"backend(s) only; the Keras backend is '{backend}'. Set KERAS_BACKEND=tensorflow, "
            f"or use weighting kind 'static'.")


def task_losses(model: Any, y: dict[str, Tensor], y_pred: dict[str, Tensor],
                sample_weight: Any = None, loss_fns: dict[str, Any] | None = None) -> dict[str, Tensor]:
    """Each task's masked loss, unweighted (before `Task.weight`), as a scalar tensor.

    Args:
        model: a `MultiTaskModel`.
        y: labels by task name.
        y_pred: the model's outputs by task name.
        sample_weight: optional per-example weights (one array, or one per task).
        loss_fns: {task: loss object}; defaults to each task's `make_loss()`.

    Returns:
        {task name: scalar loss}.
    """
    if loss_fns is None:
        loss_fns = {t.name: t.make_loss() for t in model.tasks}
    out = {}
    for name in model.task_names:
        weight = sample_weight.get(name) if isinstance(sample_weight, dict) else sample_weight
        out[name] = loss_fns[name](y[name], y_pred[name], sample_weight=weight)
    return out


def split_variables(model: Any, sample_inputs: dict[str, Any],
                    max_rows: int = 32) -> tuple[list, dict[str, list]]:
    """Splits a model's trainable variables into shared and task-specific ones.

    Runs one forward pass on the first rows of `sample_inputs` and asks, for
    each task's output, which variables its gradient reaches with a nonzero
    value. Looking at values, not only at graph connections, matters: MMoE
    slices each task's mixture out of one stacked tensor, so every gate is
    connected to every output, yet gate t's gradient from another task is
    exactly zero. A variable that is connected but gets an all-zero gradient
    from every task on these rows keeps its graph connections.

    Args:
        model: a built or unbuilt `MultiTaskModel`.
        sample_inputs: an encoded feature dict (`FeatureEncoder.transform`).
        max_rows: rows of `sample_inputs` used.

    Returns:
        `(shared, specific)`: the variables two or more tasks depend on, in
        `model.trainable_variables` order, and {task: the variables only that
        task depends on}. Variables no output depends on are in neither.
    """
    check_gradient_backend("Telling shared from task-specific variables")
    import tensorflow as tf

    sample = {k: v[:max_rows] for k, v in sample_inputs.items()}
    if not model.built:
        model(sample)
    variables = list(model.trainable_variables)
    with tf.GradientTape(persistent=True) as tape:
        outputs = model(sample, training=False)
        totals = {name: tf.reduce_sum(outputs[name]) for name in model.task_names}
    connected: list[list[str]] = [[] for _ in variables]
    nonzero: list[list[str]] = [[] for _ in variables]
    for name, total in totals.items():
        for i, grad in enumerate(tape.gradient(total, variables)):
            if grad is None:
                continue
            connected[i].append(name)
            values = grad.values if isinstance(grad, tf.IndexedSlices) else grad
            if bool(tf.reduce_any(tf.not_equal(values, 0.0))):
                nonzero[i].append(name)
    del tape
    users = [n if n else c for n, c in zip(nonzero, connected)]
    shared = [v for v, u in zip(variables, users) if len(u) > 1]
    specific = {name: [v for v, u in zip(variables, users) if u == [name]] for name in model.task_names}
    return shared, specific


def densify(grads: list, variables: list) -> list[Tensor]:
    """Dense gradients: IndexedSlices (embedding lookups) made dense, None made zeros."""
    import tensorflow as tf

    return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]


def flatten(grads: list[Tensor]) -> Tensor:
    """Concatenates a list of dense gradients into one vector."""
    import tensorflow as tf

    if not grads:
        return tf.zeros((0,))
    return tf.concat([tf.reshape(g, (-1,)) for g in grads], axis=0)


def unflatten(vector: Tensor, like: list) -> list[Tensor]:
    """Splits a vector back into tensors shaped like `like` (the inverse of `flatten`)."""
    import tensorflow as tf

    parts, start = [], 0
    for v in like:
        size = 1
        for d in v.shape:
            size *= int(d)
        parts.append(tf.reshape(vector[start:start + size], v.shape))
        start += size
    return parts


def gradients_by_task(tape: Any, losses: dict[str, Tensor], variables: list) -> dict[str, list[Tensor]]:
    """Dense gradients of each task's loss with respect to `variables`.

    Args:
        tape: a persistent `tf.GradientTape` that recorded the losses.
        losses: {task: scalar loss}.
        variables: the variables to differentiate with respect to.

    Returns:
        {task: [dense gradient per variable]} (zeros where a task does not
        depend on a variable).
    """
    return {name: densify(tape.gradient(loss, variables), variables) for name, loss in losses.items()}


def per_task_gradients(
    model: Any,
    x: dict[str, Any],
    y: dict[str, Any],
    sample_weight: Any = None,
    variables: list | None = None,
    training: bool = True,
) -> tuple[dict[str, Tensor], dict[str, list[Tensor]], list]:
    """Each task's loss and its gradient with respect to the shared variables.

    Eager, one batch: meant for analysis (e.g. cosines between task
    gradients) and tests. Training uses the same pieces inside its step.

    Args:
        model: a `MultiTaskModel`.
        x: encoded features of one batch.
        y: labels by task name (NaN = missing, masked out).
        sample_weight: optional per-example weights.
        variables: the variables to differentiate with respect to; defaults
            to the shared variables (`split_variables(model, x)[0]`).
        training: run the forward pass in training mode (dropout on).

    Returns:
        `(losses, grads, variables)`: {task: unweighted scalar loss},
        {task: [dense gradient per variable]}, and the variables.

    Example:
    ```python
    losses, grads, shared = per_task_gradients(model, x, y)
    a, b = (flatten(grads[t]) for t in model.task_names)
    cosine = float(tf.reduce_sum(a * b) / (tf.norm(a) * tf.norm(b)))
    ```
    """
    check_gradient_backend()
    import tensorflow as tf

    if variables is None:
        variables = split_variables(model, x)[0]
    y = {k: tf.convert_to_tensor(v) for k, v in y.items()}
    with tf.GradientTape(persistent=True) as tape:
        y_pred = model(x, training=training)
        losses = task_losses(model, y, y_pred, sample_weight)
    grads = gradients_by_task(tape, losses, variables)
    del tape
    return losses, grads, variables

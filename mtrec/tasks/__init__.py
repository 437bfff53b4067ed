"""Tasks: each owns its label column, head, masked loss and metrics."""

from __future__ import annotations

from typing import Any

from mtrec.errors import ConfigError
from mtrec.tasks.base import Task
from mtrec.tasks.binary import BinaryTask
from mtrec.tasks.masking import MaskedLoss, MaskedMetric
from mtrec.tasks.multiclass import MulticlassTask
from mtrec.tasks.regression import CountTask, RegressionTask
from mtrec.utils.validation import choice, from_config

TASK_KINDS: dict[str, type[Task]] = {
    cls.kind: cls for cls in (BinaryTask, RegressionTask, MulticlassTask, CountTask)
}


def task_from_config(config: Task | dict[str, Any], where: str = "task") -> Task:
    """Builds a task from its config dict (with a `kind` key), or returns a Task as is.

    Raises:
        ConfigError: unknown kind (the allowed ones are listed), unknown or
            badly typed key.
    """
    if isinstance(config, Task):
        return config
    if not isinstance(config, dict):
        raise ConfigError(f"Config key '{where}' must be a mapping. Received: {config!r}")
    if "kind" not in config:
        raise ConfigError(f"Missing required config key '{where}.kind' (one of {sorted(TASK_KINDS)}).")
    kind = choice(config["kind"], sorted(TASK_KINDS), f"{where}.kind")
    body = {k: v for k, v in config.items() if k != "kind"}
    return from_config(TASK_KINDS[kind], body, where)


def tasks_from_config(items: list, where: str = "tasks") -> list[Task]:
    """Builds the task list, rejecting duplicate names and an empty list."""
    if not isinstance(items, list) or not items:
        raise ConfigError(f"Config key '{where}' must be a non-empty list of tasks. Received: {items!r}")
    tasks = [task_from_config(item, f"{where}[{i}]") for i, item in enumerate(items)]
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        if task.name in seen:
            raise ConfigError(f"Task '{task.name}' is declared twice ({where}[{i}]).")
        seen.add(task.name)
    chain_order(tasks, where)
    return tasks


def chain_order(tasks: list[Task], where: str = "tasks") -> list[Task]:
    """Orders tasks so that every task comes after the task named in its `after`.

    Raises:
        ConfigError: `after` names an unknown or non-binary task, or the
            chains form a cycle.
    """
    by_name = {t.name: t for t in tasks}
    for i, task in enumerate(tasks):
        parent = getattr(task, "after", None)
        if parent is None:
            continue
        if parent not in by_name:
            raise ConfigError(
                f"{where}[{i}].after names task '{parent}', which is not declared. "
                f"Tasks: {sorted(by_name)}")
        if not isinstance(by_name[parent], BinaryTask):
            raise ConfigError(
                f"{where}[{i}].after must name a binary task; '{parent}' is {by_name[parent].kind}.")
    ordered: list[Task] = []
    placed: set[str] = set()
    pending = list(tasks)
    while pending:
        ready = [t for t in pending if getattr(t, "after", None) in (None, *placed)]
        if not ready:
            raise ConfigError(f"The 'after' chains of {where} form a cycle: {[t.name for t in pending]}")
        for task in ready:
            ordered.append(task)
            placed.add(task.name)
            pending.remove(task)
    return ordered


def fit_tasks(tasks: list[Task], frame, source: str = "data") -> None:
    """Fits every task's label state (`Task.fit`) on the training split's rows.

    Args:
        tasks: the tasks, changed in place (the model built from them saves the state).
        frame: the training split's rows (with the label columns).
        source: description of `frame` for messages.
    """
    for task in tasks:
        weights = None
        if task.sample_weight:
            weights = task.encode(frame, source)[:, 1]  # checked, and 0 where the label is missing
        task.fit(frame[task.label], source, weights)


__all__ = [
    "Task", "BinaryTask", "RegressionTask", "MulticlassTask", "CountTask", "MaskedLoss", "MaskedMetric",
    "fit_tasks",
    "TASK_KINDS", "task_from_config", "tasks_from_config", "chain_order",
]

"""Small Keras helpers shared by layers and models."""

from __future__ import annotations

from typing import Any

import keras

#: Registers a class for `.keras` saving under the package name "mtrec".
serializable = keras.saving.register_keras_serializable(package="mtrec")


def clone_initializer(initializer: Any, seed_offset: int = 0) -> keras.initializers.Initializer:
    """Returns a fresh copy of `initializer`, its seed (if any) shifted by `seed_offset`.

    Two experts built from the same seeded initializer would otherwise start
    identical, and the gates could never tell them apart.

    Args:
        initializer: an initializer, its name, or its config.
        seed_offset: int. Added to the initializer's seed when it has one.

    Returns:
        A new initializer instance.
    """
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if config.get("seed") is not None:
        config["seed"] = int(config["seed"]) + seed_offset
    return initializer.__class__.from_config(config)


def check_positive_int(value: Any, name: str) -> int:
    """Raises ValueError unless `value` is a positive int; returns it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def check_units(units: Any, name: str = "units", allow_empty: bool = True) -> list[int]:
    """Validates a list of layer widths; returns it as a list of ints."""
    if isinstance(units, int) and not isinstance(units, bool):
        units = [units]
    if not isinstance(units, (list, tuple)) or (not allow_empty and not units):
        raise ValueError(
            f"`{name}` must be a {'non-empty ' if not allow_empty else ''}list of positive integers. "
            f"Received: {name}={units!r}"
        )
    for u in units:
        check_positive_int(u, name)
    return [int(u) for u in units]


def check_rate(value: Any, name: str) -> float:
    """Raises ValueError unless 0 <= value < 1; returns it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1). Received: {name}={value!r}")
    return float(value)

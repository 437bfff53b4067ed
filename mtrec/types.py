"""Type aliases, so annotations never import a backend."""

from typing import Any

Tensor = Any
Shape = tuple[int | None, ...]

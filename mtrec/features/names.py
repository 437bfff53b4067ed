"""Internal names: valid Keras/TensorFlow names derived from any column or table name.

A feature may be named by any column ("Clothing ID", "prix (€)", "年齢"), but
TensorFlow refuses such strings in variable scopes ("'..._table_Clothing
ID_momentum' is not a valid scope name") and as SavedModel input names. The
model and the export therefore use an internal name per column or table:

* a name made only of `[A-Za-z0-9_]` (not starting with `_`) is kept as is,
  so existing models keep their weight and input names;
* any other name has each other character replaced by `_` and, when that
  sanitized form is shared by another name of the same set or by a kept
  name, or the name has no ASCII letter or digit, a short stable hash of
  the original appended (`Clothing_ID_3f2a9c1e`, `x___9b0e41d2` for `"年齢"`).

`internal_names` is a function of the whole set of names, so it is computed
from the same set (a model's tables, an export's input columns) wherever it is
needed, and two names that would still get the same internal name are
refused by `check_names` at config time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from mtrec.errors import ConfigError

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*")
_OTHER = re.compile(r"[^A-Za-z0-9_]")


def sanitize(name: str) -> str:
    """`name` with every character outside `[A-Za-z0-9_]` written `_` (and a leading `_` made `x_`)."""
    safe = _OTHER.sub("_", name)
    return safe if safe[:1].isalnum() else f"x{safe}"


def short_hash(name: str) -> str:
    """8 hex digits of the name's SHA-1: stable across processes and machines."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]


def internal_names(names: Iterable[str]) -> dict[str, str]:
    """The internal name of each of a set of names.

    Args:
        names: distinct names (e.g. a model's embedding tables).

    Returns:
        `{name: internal name}`, in the order given; the internal names are
        valid TensorFlow scope and SavedModel input names.
    """
    names = list(dict.fromkeys(names))
    plain = {n for n in names if _PLAIN.fullmatch(n)}
    sanitized = {n: sanitize(n) for n in names if n not in plain}
    uses: dict[str, int] = {}
    for safe in sanitized.values():
        uses[safe] = uses.get(safe, 0) + 1
    out = {}
    for name in names:
        if name in plain:
            out[name] = name
        else:
            safe = sanitized[name]
            # A name without one ASCII letter or digit ("年齢") says nothing once sanitized: hash it too.
            clash = uses[safe] > 1 or safe in plain or not any(c.isascii() and c.isalnum() for c in name)
            out[name] = f"{safe}_{short_hash(name)}" if clash else safe
    return out


def check_names(names: Iterable[tuple[str, str]], what: str) -> None:
    """Refuses names that look alike or share an internal name.

    Two names are refused together when they are equal once surrounding
    whitespace is stripped (a CSV header `"Clothing ID "` next to
    `"Clothing ID"` is almost surely a mistake), or when their internal
    names coincide.

    Args:
        names: `(name, where)` pairs, `where` the config key that declares it.
        what: what the names are ("feature", "table"), for messages.

    Raises:
        ConfigError: naming both names and where they are declared.
    """
    pairs = list(names)
    seen: dict[str, tuple[str, str]] = {}
    for name, where in pairs:
        key = name.strip()
        if key in seen and seen[key][0] != name:
            other, other_where = seen[key]
            raise ConfigError(
                f"The {what} names {other!r} ({other_where}) and {name!r} ({where}) differ only by "
                f"surrounding whitespace. Rename one of them (or the column).")
        seen.setdefault(key, (name, where))
    mapping = internal_names(name for name, _ in pairs)
    owner: dict[str, tuple[str, str]] = {}
    for name, where in pairs:
        internal = mapping[name]
        if internal in owner and owner[internal][0] != name:
            other, other_where = owner[internal]
            raise ConfigError(
                f"The {what} names {other!r} ({other_where}) and {name!r} ({where}) both become the "
                f"internal name {internal!r} (used for Keras weights and SavedModel inputs). "
                f"Rename one of them.")
        owner.setdefault(internal, (name, where))

"""The one config reader: YAML (or JSON) files and `key=value` override values, plain Python.

Every config of mtrec goes through `read_config_file`: the experiment config
(`mtrec.config.load_config`), the recommend config, the retrieval settings the
Keras 2 child process receives, and the pipeline configs. Override values
(`training.learning_rate=1e-4`) go through `parse_yaml`.

YAML here resolves floats as YAML 1.2 and JSON do: PyYAML's default (YAML 1.1)
reads `1e-4` as the string `"1e-4"`, because its float pattern needs a dot, so a
learning rate written the common way would be refused as "not a number".

Example:

```python
raw = read_config_file("configs/quickstart.yaml")       # a dict of sections
parse_yaml("1e-4")                                      # 0.0001
```
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mtrec.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` with YAML 1.2 floats (`1e-4`, `1E+3`, `.5`, `-.inf`, `.nan`)."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in list(_Loader.yaml_implicit_resolvers):
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, regexp) for tag, regexp in _Loader.yaml_implicit_resolvers[_first]
        if tag != "tag:yaml.org,2002:float"]
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """Parses YAML text (safe: plain data only), with YAML 1.2 floats.

    Raises:
        yaml.YAMLError: the text is not valid YAML.
    """
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def read_config_file(path: str | Path) -> Any:
    """Reads a config file: JSON when its name ends in `.json`, YAML (`parse_yaml`) otherwise.

    Raises:
        ConfigError: the file is missing, empty or not valid YAML/JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path.resolve()}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"Config file {path} is not UTF-8 text (byte {err.start}: "
                          f"{err.object[err.start:err.start + 1]!r}); save it as UTF-8 YAML or JSON.") from None
    except OSError as err:  # unreadable: permissions
        raise ConfigError(f"Cannot read the config file {path}: {err.strerror}.") from None
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as err:
            raise ConfigError(f"Config file {path} is not valid JSON: {err}") from err
    else:
        try:
            raw = parse_yaml(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"Config file {path} is not valid YAML: {err}") from err
    if raw is None:
        raise ConfigError(f"Config file {path} is empty.")
    return raw

"""Configuration files (the consortium file, the matching rules, the recognition catalogue)
read as YAML and checked with pydantic: every mistake raises ``ConfigError`` naming the
file, the line and the key, so start-up stops with something an engineer can fix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adapter.errors import ConfigError
from adapter.yamlsource import LineIndex, YamlSyntaxError, load_yaml

# the parts of a pydantic error location that name a union member or a validator, not a
# key of the file ("literal['files']", "function-after[...]", "int", "list[str]" ...)
_TAG_PREFIXES = ("literal[", "function-", "dict[", "list[", "tagged-union[")
_TAG_NAMES = frozenset({"int", "str", "float", "bool", "none"})


def read_config(path: Path, what: str) -> tuple[dict[str, Any], LineIndex]:
    """The file's top-level mapping and where each value came from; ``what`` names the
    file in the error when it is not a mapping (``"the consortium file"``)."""
    try:
        data, index = load_yaml(path)
    except YamlSyntaxError as exc:
        raise ConfigError(
            exc.message, file=f"{exc.file}:{exc.line}" if exc.line else exc.file
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a YAML mapping", file=str(path))
    return data, index


def key_path(loc: Sequence[Any]) -> list[str | int]:
    """A pydantic error location as a key path of the file."""
    return [
        part
        for part in loc
        if isinstance(part, int)
        or not (str(part).startswith(_TAG_PREFIXES) or str(part) in _TAG_NAMES)
    ]


def located(path: Path, index: LineIndex, keys: Sequence[str | int], message: str) -> ConfigError:
    """``ConfigError`` at the line of ``keys`` (or of its deepest known prefix)."""
    line = index.line_of(keys)
    key = ".".join(str(p) for p in keys) or "(top)"
    return ConfigError(message, file=f"{path}:{line}" if line else str(path), key=key)


def first_problem(exc: ValidationError) -> tuple[list[str | int], str]:
    """The first validation error as (key path, message)."""
    first = exc.errors()[0]
    return key_path(first["loc"]), first["msg"]

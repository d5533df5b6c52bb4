"""YAML loading that remembers where every value came from (file and line).

Configuration and mapping errors must name the file and line, so both loaders go through
``load_yaml``: it returns the plain data plus a ``LineIndex`` from a key path such as
``("facilities", 0, "sources", 1, "format")`` to its 1-based line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]

# libyaml's parser when PyYAML was built with it (several times faster on mapping folders);
# both report the same marks, so file and line stay exact
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(slots=True)
class LineIndex:
    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Line of the deepest known prefix of ``path`` (an error often points below a key)."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)


class YamlSyntaxError(Exception):
    def __init__(self, file: str, line: int | None, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file = file
        self.line = line
        self.message = message


def _convert(loader: Any, node: yaml.Node, path: PathKey, index: LineIndex) -> Any:
    index.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | bool | float) and key is not None:
                raise YamlSyntaxError(
                    index.file, key_node.start_mark.line + 1, "mapping keys must be plain scalars"
                )
            if key in out:
                raise YamlSyntaxError(
                    index.file, key_node.start_mark.line + 1, f"duplicate key {key!r}"
                )
            out[key] = _convert(loader, value_node, (*path, key), index)
            index.lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), index) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str) -> tuple[Any, LineIndex]:
    index = LineIndex(file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, index
        return _convert(loader, node, (), index), index
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlSyntaxError(file, line, str(exc.problem or exc)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(file, None, str(exc)) from None
    finally:
        loader.dispose()


def load_yaml(path: Path) -> tuple[Any, LineIndex]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlSyntaxError(str(path), None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(str(path), None, f"not UTF-8: {exc.reason}") from None
    return parse_yaml(text, str(path))

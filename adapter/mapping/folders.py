"""The files of a mapping set: ``_shared`` overlaid by a source system's folder (and a
facility's), read with line numbers and checked against the schema of their ``kind``.

Layout (see docs/mapping-language.md section 2)::

    mappings/_shared/concept-maps/<name>.yaml        code tables, shared by every format
    mappings/_shared/common/resources/<name>.yaml     format-neutral resource templates and
    mappings/_shared/common/datatypes/<name>.yaml     datatypes (variables only, no paths):
                                                      usable by every format's files
    mappings/_shared/<format>/messages/<name>.yaml    message mappings (structure + steps)
    mappings/_shared/<format>/resources/<name>.yaml   one resource template each
    mappings/_shared/<format>/datatypes/<name>.yaml   reusable datatype templates
    mappings/<system>/...                             the same layout, only what differs

A file in a later folder with the same relative path replaces the earlier one; with
``extends: _shared`` it is merged onto it (mappings merge key by key, lists are replaced,
``null`` removes a key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from adapter.errors import MappingDefinitionError
from adapter.yamlsource import LineIndex, YamlSyntaxError, load_yaml

SHARED = "_shared"
# the folder of format-neutral templates and datatypes: they read variables only (no paths),
# are compiled once and are available to the files of every format
COMMON = "common"
CONCEPT_MAPS = "concept-maps"
KIND_FOLDERS = {"resource": "resources", "datatype": "datatypes", "message": "messages"}


@dataclass(slots=True)
class MappingFile:
    """One file of the set after overlaying: its data, and where each line came from."""

    rel: str  # the path below the mapping folder: hl7v2/resources/observation.yaml
    data: dict[str, Any]
    indexes: list[LineIndex]  # system file first, then the shared one it extends

    def where(self, key_path: tuple[Any, ...]) -> tuple[str, int | None]:
        for index in self.indexes:
            line = index.lines.get(tuple(key_path))
            if line is not None:
                return index.file, line
        for index in self.indexes:
            line = index.line_of(key_path)
            if line is not None:
                return index.file, line
        return self.indexes[0].file, None

    def fail(self, message: str, key_path: tuple[Any, ...] = ()) -> MappingDefinitionError:
        file, line = self.where(key_path)
        return MappingDefinitionError(message, file=file, line=line)


def _read(path: Path) -> tuple[dict[str, Any], LineIndex]:
    try:
        data, index = load_yaml(path)
    except YamlSyntaxError as exc:
        raise MappingDefinitionError(exc.message, file=exc.file, line=exc.line) from None
    if not isinstance(data, dict):
        raise MappingDefinitionError(
            "a mapping file must be a YAML mapping", file=str(path), line=1
        )
    return data, index


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = _merge(base.get(key), value)
        return out
    return over


def collect(root: Path, folders: list[str]) -> dict[str, MappingFile]:
    """``_shared`` first, then each folder in order, each replacing or extending the files
    before it at the same relative path."""
    files: dict[str, MappingFile] = {}
    for position, folder in enumerate([SHARED, *[f for f in folders if f != SHARED]]):
        base_dir = root / folder
        if not base_dir.is_dir():
            if position == 0:
                continue
            raise MappingDefinitionError(
                f"mapping folder {folder!r} does not exist under {root}", file=str(base_dir)
            )
        for path in sorted(base_dir.rglob("*.yaml")):
            rel = path.relative_to(base_dir).as_posix()
            data, index = _read(path)
            if data.get("extends") == SHARED:
                base = files.get(rel)
                if base is None:
                    raise MappingDefinitionError(
                        f"extends {SHARED} but no earlier folder has {rel}",
                        file=str(path),
                        line=index.lines.get(("extends",)),
                    )
                merged = _merge(base.data, data)
                merged.pop("extends", None)
                files[rel] = MappingFile(rel, merged, [index, *base.indexes])
            else:
                files[rel] = MappingFile(rel, data, [index])
    return files


def check_schema(file: MappingFile, schemas: dict[str, dict[str, Any]]) -> str:
    """The file's ``kind``, after checking the file against that kind's schema
    (``adapter.mapping.schema.mapping_schemas``)."""
    kind = file.data.get("kind")
    schema = schemas.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise file.fail(f"kind must be one of {', '.join(schemas)} (got {kind!r})", ("kind",))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(file.data), key=lambda e: len(list(e.absolute_path)))
    if errors:
        error = jsonschema.exceptions.best_match(errors) or errors[0]
        key_path = tuple(error.absolute_path)
        where = ".".join(str(p) for p in key_path) or "(top)"
        raise file.fail(f"{where}: {error.message}", key_path)
    return kind


Stamp = tuple[tuple[str, int, int], ...]


def stamp(root: Path, folders: list[str]) -> Stamp:
    """Every file of the folders with its modification time and size: a change in any of
    them (a mapping fix) makes the cached set stale."""
    out: list[tuple[str, int, int]] = []
    for folder in [SHARED, *folders]:
        base = root / folder
        if base.is_dir():
            for path in sorted(base.rglob("*.yaml")):
                stat = path.stat()
                out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)

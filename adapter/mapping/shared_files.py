"""Compiled mapping files shared by every mapping set of the process (decision 0046,
amended 2026-12-04).

Each source's set is ``_shared`` overlaid with its own folder (and a facility's), so most of
its files (the shared templates and datatypes, the concept maps) are the same file with the
same content in every set. Once compiled and prepared, a file's nodes are not changed (the
closures are made once, the evaluation state lives in the ``Evaluation``), so one compiled
file serves every set that has it: a set keeps its own dicts of names, the nodes are shared.

The key is what the compiled result depends on: the file's relative path (its name and
format folder), the files it was read from (``extends`` merges them; error messages name
them), what its format's paths need from the whole set (``SourceFormat.options``: XML
namespace prefixes) and the hash of its merged content. One entry per (path, files,
options): a changed file replaces its entry, so reloading edited mappings does not pile up
old versions. A file that fails to compile is never kept; the names it refers to are still
checked per set by the loader (from the noted references kept with it).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from adapter.mapping.folders import MappingFile


@dataclass(frozen=True, slots=True)
class Compiled:
    kind: str  # resource, datatype, message, concept-map
    fmt: str | None  # the format folder (``common`` included); None for a concept map
    value: Any  # the compiled template, datatype, message mapping or concept map
    compiler: Any  # the Compiler with the references it noted; None for a concept map


_Key = tuple[str, tuple[str, ...], str]
_FILES: dict[_Key, tuple[str, Compiled]] = {}  # key -> (content hash, compiled)
_LOCK = threading.Lock()


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def key_of(file: MappingFile, options: Any) -> _Key:
    return (file.rel, tuple(index.file for index in file.indexes), repr(options))


def get(key: _Key, digest: str) -> Compiled | None:
    """The compiled file for this key and content, if a set of this process compiled it."""
    hit = _FILES.get(key)
    return hit[1] if hit is not None and hit[0] == digest else None


def put(key: _Key, digest: str, compiled: Compiled) -> None:
    with _LOCK:
        _FILES[key] = (digest, compiled)


def clear() -> None:
    """Forget every compiled file (tests)."""
    with _LOCK:
        _FILES.clear()


def size() -> int:
    return len(_FILES)

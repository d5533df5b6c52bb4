"""The source formats a mapping set reads, as the loader sees them: folder names, path
compilers, ``match:`` and ``ignore:`` of message mappings, XML namespace prefixes.

A mapping folder holds one sub-folder per format: ``hl7v2/``, ``xml/`` (CDA and any other
XML), ``json/``, ``csv/``. Which folder a source's documents use follows from the
consortium's ``SourceSystem.format`` (``FOLDER_OF``). See docs/mapping-formats.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapter.mapping import csv_rows, hl7v2_paths, json_paths, xml_paths

FORMATS = ("hl7v2", "xml", "json", "csv")
# SourceSystem.format -> the format folder its documents are mapped with
FOLDER_OF = {"hl7v2": "hl7v2", "cda": "xml", "xml": "xml", "json": "json", "csv": "csv"}

PathCompiler = Callable[[str], Any]


def path_compiler(fmt: str, namespaces: dict[str, str]) -> PathCompiler:
    if fmt == "xml":
        return lambda text: xml_paths.compile_path(text, namespaces)
    if fmt == "json":
        return json_paths.compile_path
    if fmt == "csv":
        return csv_rows.compile_path
    return hl7v2_paths.compile_path


def namespaces_of(declared: list[tuple[str, dict[str, str]]]) -> dict[str, str]:
    """The prefixes of the xml folder: the built-in ones plus every message mapping's
    ``namespaces:``. ``declared`` is (file, namespaces); a prefix bound to two different URIs
    is an error (``ValueError`` naming both files)."""
    out = dict(xml_paths.BUILTIN_NAMESPACES)
    origin = dict.fromkeys(out, "built in")
    for file, namespaces in declared:
        for prefix, uri in namespaces.items():
            if prefix in out and out[prefix] != uri:
                raise ValueError(
                    f"namespace prefix {prefix!r} is {uri!r} here but "
                    f"{out[prefix]!r} in {origin[prefix]}; a prefix means one "
                    "namespace in every xml file of a mapping set"
                )
            out[prefix] = uri
            origin.setdefault(prefix, file)
    return out


class MatchError(ValueError):
    """A bad ``match:`` entry; ``key`` names it (``xpath``, ``root``, a JSON path ...)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def compile_match(fmt: str, match: dict[str, Any], namespaces: dict[str, str]) -> Any:
    """The format's matcher (``.matches(document)``, ``.describe()``); hl7v2 has none (message
    types are looked up directly). ``MatchError`` naming the bad entry."""
    if fmt == "xml":
        for key in ("root", "xpath"):
            try:
                xml_paths.compile_match(
                    match.get("root") if key == "root" else None,
                    match.get("xpath") if key == "xpath" else None,
                    namespaces,
                )
            except ValueError as exc:
                raise MatchError(key, str(exc)) from None
        return xml_paths.compile_match(match.get("root"), match.get("xpath"), namespaces)
    if fmt == "json":
        for key, entries in (
            ("when", list(match.get("when") or {})),
            ("exists", list(match.get("exists") or [])),
        ):
            for entry in entries:
                try:
                    json_paths.compile_match(
                        {entry: ""} if key == "when" else None, [entry] if key == "exists" else None
                    )
                except ValueError as exc:
                    raise MatchError(key, str(exc)) from None
        return json_paths.compile_match(match.get("when"), match.get("exists"))
    if fmt == "csv":
        return csv_rows.CsvMatch(tuple(str(c).strip() for c in match["columns"]))
    return None


def compile_ignore(fmt: str, entry: str, namespaces: dict[str, str]) -> Any:
    """One ``ignore:`` entry: an XPath, a JSON path from the document, a column name; HL7 v2
    entries stay text (``PV1``, ``MSH-7``)."""
    if fmt == "xml":
        return xml_paths.compile_path(entry, namespaces)
    if fmt == "json":
        path = json_paths.compile_path(entry)
        if not path.absolute:
            raise ValueError(f"{entry!r}: ignore paths start at the document ($)")
        return path
    if fmt == "csv":
        return csv_rows.compile_path(entry).name
    return entry

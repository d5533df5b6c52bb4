"""XML as a source format (CDA and any vendor XML): the hardened parser
(``adapter.xmlsafe``), XPath paths with the set's namespace prefixes, ``match:`` on the root
element and an XPath, unread attributes and text (``adapter.mapping.xml_paths``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from lxml import etree

from adapter.errors import Issue
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping import xml_paths
from adapter.mapping.folders import MappingFile
from adapter.mapping.formats.base import MatchError, Parsed, SourceFormat
from adapter.mapping.nodes import MessageMapping
from adapter.xmlsafe import parse_xml


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


class XmlFormat(SourceFormat):
    name = "xml"
    media_types: ClassVar[Mapping[str, str]] = {
        "cda": "application/hl7-cda+xml",
        "xml": "application/xml",
    }
    match_schema: ClassVar[dict[str, Any]] = {
        "anyOf": [{"required": ["root"]}, {"required": ["xpath"]}],
        "properties": {"root": {"type": "string"}, "xpath": {"type": "string"}},
    }
    message_keys = frozenset({"namespaces"})

    # a CDA entry's <value value=".." unit=".."/>, section text, a vendor element's text
    default_clinical: ClassVar[tuple[str, ...]] = ("value", "text()")

    def parse(
        self, raw: bytes, *, max_bytes: int | None = None, limits: InputLimits = DEFAULT_LIMITS
    ) -> Parsed:
        xml = parse_xml(raw, max_bytes=max_bytes)
        return Parsed(xml.root, xml.encoding, xml.issues)

    def options(self, files: Mapping[str, MappingFile]) -> dict[str, str]:
        """The namespace prefixes, declared in the xml message mappings, for every xml file of
        the set."""
        declared: list[tuple[str, dict[str, str]]] = []
        for rel, file in sorted(files.items()):
            value = file.data.get("namespaces")
            if rel.startswith("xml/") and file.data.get("kind") == "message" and value is not None:
                if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                ):
                    raise file.fail("namespaces maps prefixes to namespace URIs", ("namespaces",))
                declared.append((file.indexes[0].file, value))
                try:
                    namespaces_of(declared)
                except ValueError as exc:
                    raise file.fail(str(exc), ("namespaces",)) from None
        return namespaces_of(declared)

    def compile_path(self, text: str, options: Any) -> xml_paths.XmlPath:
        return xml_paths.compile_path(text, options or {})

    def compile_match(self, match: dict[str, Any], options: Any) -> xml_paths.XmlMatch:
        for key in ("root", "xpath"):
            try:
                xml_paths.compile_match(
                    match.get("root") if key == "root" else None,
                    match.get("xpath") if key == "xpath" else None,
                    options,
                )
            except ValueError as exc:
                raise MatchError(key, str(exc)) from None
        return xml_paths.compile_match(match.get("root"), match.get("xpath"), options)

    def compile_ignore(self, entry: str, options: Any) -> xml_paths.XmlPath:
        return xml_paths.compile_path(entry, options)

    def variable_hint(self, name: str) -> str:
        return f"; an attribute of the current element is written ./@{name}"

    def describe(self, document: Any) -> tuple[str, str]:
        name = etree.QName(document).localname
        return f"the document (root element {name})", xml_paths.element_path(document)

    def start(
        self, document: Any, mapping: MessageMapping
    ) -> tuple[xml_paths.XmlSource, Any, list[Issue]]:
        return xml_paths.XmlSource(xml_paths.XmlReadTracker()), document, []

    def compile_clinical(self, entries: list[str]) -> xml_paths.XmlClinical:
        """Local names of elements and attributes (``value``) and ``text()`` for any text."""
        names = set()
        for entry in entries:
            if entry != "text()" and not xml_paths.NAME.fullmatch(entry):
                raise ValueError(f"{entry!r} is neither an element or attribute name nor text()")
            if entry != "text()":
                names.add(entry)
        return xml_paths.XmlClinical(frozenset(names), "text()" in entries)

    def unread(
        self, document: Any, source: Any, mapping: MessageMapping
    ) -> list[tuple[str, str, bool]]:
        return xml_paths.unread(document, source.tracker, mapping.ignore, mapping.clinical)


FORMAT = XmlFormat()

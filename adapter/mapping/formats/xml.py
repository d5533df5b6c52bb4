"""XML as a source format (CDA and any vendor XML): the hardened parser
(``adapter.xmlsafe``), XPath paths with the set's namespace prefixes, ``match:`` on the root
element and an XPath, unread attributes and text (``adapter.mapping.xml_paths``)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, ClassVar

from lxml import etree

from adapter.errors import Issue, MessageError
from adapter.input_limits import DEFAULT_LIMITS, InputLimits
from adapter.mapping import xml_paths
from adapter.mapping.engine import run_steps
from adapter.mapping.evaluation import Evaluation
from adapter.mapping.folders import MappingFile
from adapter.mapping.formats.base import MatchError, Parsed, SourceFormat, best_place
from adapter.mapping.nodes import MappingSet, MessageMapping
from adapter.mapping.translation import (
    ResourceCheck,
    Translation,
    TranslationContext,
    new_state,
    unread_issue,
)
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
    message_keys = frozenset({"namespaces", "embedded"})

    # a CDA entry's <value value=".." unit=".."/>, section text, a vendor element's text
    default_clinical: ClassVar[tuple[str, ...]] = ("value", "text()")

    def parse(
        self, raw: bytes, *, max_bytes: int | None = None, limits: InputLimits = DEFAULT_LIMITS
    ) -> Parsed:
        xml = parse_xml(raw, max_bytes=max_bytes)
        return Parsed(xml.root, xml.encoding, xml.issues)

    def locate_value(self, document: etree._Element, value: str) -> str | None:
        """``/ClinicalDocument/.../value[1]/@displayName``: the attribute or text holding it."""
        found = best_place(value, _texts(document))
        if found is None:
            return None
        element, attribute = found
        path = xml_paths.element_path(element)
        return f"{path}/@{attribute}" if attribute else f"{path}/text()"

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

    def translate(
        self,
        mappings: MappingSet,
        document: Any,
        context: TranslationContext,
        check: ResourceCheck | None = None,
    ) -> Translation:
        """A message whose mapping says ``embedded:`` carries the document to translate
        (an HL7 v3 document registration with the WS/T 500 CDA document in base64): that
        document is decoded and translated with the mapping its own root selects, as if it
        had been sent alone; the envelope's steps run too, and what of the envelope no rule
        read is reported as for any message."""
        mapping = self.select(mappings, document)
        if isinstance(mapping, Issue) or mapping.embedded is None:
            return super().translate(mappings, document, context, check)
        tracker = xml_paths.XmlReadTracker()
        found = xml_paths.evaluate(mapping.embedded, document, tracker)
        where = found[0].location if found else xml_paths.element_path(document)
        inner = self._embedded(mappings, found, where, context)
        source = xml_paths.XmlSource(tracker)
        state = new_state(mappings, self.name, source, context)
        variables = context.variables_for(mappings.formats[self.name], mapping)
        run_steps(Evaluation(state, document, variables), mapping.steps)
        unread = self.unread(document, source, mapping)
        issues = [*inner.issues, *state.issues, *(unread_issue(*item) for item in unread)]
        return Translation(
            [*inner.resources, *state.resources.values()],
            issues,
            mapping=f"{mapping.label} > {inner.mapping}" if inner.mapping else mapping.label,
            unread=[item[0] for item in unread] + inner.unread,
            policies={**inner.policies, **state.policies},
            origins={**inner.origins, **state.produced_from},
        )

    def _embedded(
        self, mappings: MappingSet, found: list[Any], where: str, context: TranslationContext
    ) -> Translation:
        """The carried document's translation; its issues located inside the envelope
        (``<where>#<location in the document>``)."""
        text = "".join(xml_paths.value_text(found[0]).split()) if found else ""
        if not text:
            return Translation(
                [], [Issue("error", "required", "the message carries no document", location=where)]
            )
        try:
            raw = base64.b64decode(text, validate=True)
            parsed = parse_xml(raw)
        except binascii.Error:
            return Translation(
                [],
                [Issue("error", "structure", "the carried document is not base64", location=where)],
            )
        except MessageError as exc:
            return Translation([], [_inside(i, where) for i in exc.issues])
        if not isinstance(self.select(mappings, parsed.root), Issue) and (
            self.select(mappings, parsed.root).embedded is not None  # type: ignore[union-attr]
        ):
            return Translation(
                [],
                [
                    Issue(
                        "error",
                        "structure",
                        "a carried document carries another document; one level only",
                        location=where,
                    )
                ],
            )
        inner = super().translate(mappings, parsed.root, context)
        inner.issues = [_inside(i, where) for i in [*parsed.issues, *inner.issues]]
        inner.unread = [f"{where}#{u}" for u in inner.unread]
        return inner

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


def _inside(issue: Issue, where: str) -> Issue:
    """An issue of a carried document, located inside the message that carries it."""
    return replace(issue, location=f"{where}#{issue.location}" if issue.location else where)


def _texts(root: etree._Element) -> Iterator[tuple[tuple[etree._Element, str | None], str]]:
    """Every attribute value and element text of the document, by (element, attribute)."""
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # a comment or processing instruction
        for name, text in element.attrib.items():
            yield (element, etree.QName(name).localname), text
        if element.text:
            yield (element, None), element.text


FORMAT = XmlFormat()

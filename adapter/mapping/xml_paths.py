"""XML (CDA included) as a source for mappings: XPath paths, values with locations, what was read.

Paths are XPath 1.0, compiled once at load time with the namespace prefixes the mapping set
declares (``cda:id[@root='2.16.156.10011.1.3']/@extension``). A path is evaluated with the
current element as context node: the document's root element at the top of a message
mapping, the item inside ``each``.

Values: an element reads as its text with whitespace normalised (the text of everything
inside it); an attribute as its value; ``text()`` as that text node. Locations are written
with local names and 1-based positions among same-named siblings, without namespace
prefixes: ``/ClinicalDocument/recordTarget[1]/patientRole[1]/id[2]/@extension``.

The read record feeds the silent-drop report: attributes and text that no rule read are
listed (an element nothing inside which was read is listed once, as a whole).

Why one module of about 440 lines: paths, located values and the read-tracking of the XML
source share one compiled-XPath cache and one notion of a node's location; split, each part
would need the others' internals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from adapter.errors import MappingError
from adapter.mapping.values import text as value_text

# prefixes every XML mapping may use without declaring them; a mapping may not rebind them
BUILTIN_NAMESPACES: dict[str, str] = {
    "cda": "urn:hl7-org:v3",
    "sdtc": "urn:hl7-org:sdtc",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}

_STRING = re.compile(r"'[^']*'|\"[^\"]*\"")
_PREFIX = re.compile(r"(?<![\w.\-$])([^\W\d][\w.\-]*):(?=[^\W\d]|\*)")
_PREDICATE_ATTR = re.compile(r"@([^\W\d][\w.\-]*(?::[^\W\d][\w.\-]*)?)")
NAME = re.compile(r"[^\W\d][\w.\-]*")  # an XML local name (no prefix)
_PROBE = etree.Element("probe")  # evaluated once at load time: finds undeclared prefixes


@dataclass(frozen=True, slots=True, eq=False)
class XmlPath:
    text: str
    xpath: etree.XPath
    # attributes tested in predicates (``id[@root='...']``): read when the path matches
    predicate_attrs: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return self.text


# compiled paths by (text, namespace prefixes): the same path is written in many templates
# and sets (lxml keeps a compiled XPath's own memory outside Python's, about 3 KB each); an
# XmlPath is immutable and its XPath is evaluated with the context node as argument
_COMPILED: dict[tuple[str, tuple[tuple[str, str], ...]], XmlPath] = {}


def compile_path(text: str, namespaces: dict[str, str]) -> XmlPath:
    """Compile an XPath; ``ValueError`` with a readable reason when it is not one."""
    text = text.strip()
    key = (text, tuple(sorted(namespaces.items())))
    found = _COMPILED.get(key)
    if found is None:
        found = _COMPILED[key] = _compile_path(text, namespaces)
    return found


def _compile_path(text: str, namespaces: dict[str, str]) -> XmlPath:
    if text.startswith("@"):
        raise ValueError(
            f"{text!r}: @name is a variable in mappings; an attribute of the "
            f"current element is written ./{text}"
        )
    unquoted = _STRING.sub("''", text)
    for prefix in _PREFIX.findall(unquoted):
        if prefix not in namespaces:
            known = ", ".join(sorted(namespaces)) or "none"
            raise ValueError(
                f"{text!r}: namespace prefix {prefix!r} is not declared "
                f"(declared: {known}; declare it under namespaces: in a message "
                "mapping of this format)"
            )
    try:
        xpath = etree.XPath(text, namespaces=namespaces, smart_strings=True)
        xpath(_PROBE)
    except (etree.XPathSyntaxError, etree.XPathEvalError) as exc:
        raise ValueError(f"{text!r} is not a valid XPath: {exc}") from None
    attrs = frozenset(
        name.split(":")[-1]
        for inside in re.findall(r"\[([^\]]*)\]", unquoted)
        for name in _PREDICATE_ATTR.findall(inside)
    )
    return XmlPath(text, xpath, attrs)


# -- locations -----------------------------------------------------------------------------


def element_path(element: etree._Element, cache: dict[etree._Element, str] | None = None) -> str:
    """``/ClinicalDocument/component[1]/section[2]``: local names, positions among siblings
    of the same name (the root has none). ``cache`` keeps the paths of elements met before."""
    if cache is not None:
        known = cache.get(element)
        if known is not None:
            return known
    parent = element.getparent()
    name = etree.QName(element).localname
    if parent is None:
        path = f"/{name}"
    else:
        position = 1 + sum(1 for _ in element.itersiblings(element.tag, preceding=True))
        path = f"{element_path(parent, cache)}/{name}[{position}]"
    if cache is not None:
        cache[element] = path
    return path


def _attr_local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


# -- reading with a record of what was read ----------------------------------------------------


@dataclass(slots=True)
class XmlReadTracker:
    """Elements whose text was read (with everything inside) and attributes that were read."""

    texts: set[etree._Element] = field(default_factory=set)
    attrs: set[tuple[etree._Element, str]] = field(default_factory=set)
    touched: set[etree._Element] = field(default_factory=set)  # something read at or below

    def touch(self, element: etree._Element | None) -> None:
        while element is not None and element not in self.touched:
            self.touched.add(element)
            element = element.getparent()

    def read_text(self, element: etree._Element) -> None:
        self.texts.add(element)
        self.touch(element)

    def read_attr(self, element: etree._Element, name: str) -> None:
        self.attrs.add((element, name))
        self.touch(element)


class XmlNode:
    """An element, an attribute or a text node reached by a path; knows its location."""

    __slots__ = ("attr", "element", "kind", "tracker", "value")

    def __init__(
        self,
        kind: str,
        element: etree._Element,
        tracker: XmlReadTracker,
        attr: str | None = None,
        value: str | None = None,
    ) -> None:
        self.kind = kind  # "element" | "attribute" | "text"
        self.element = element  # the element itself, or the owner of the attribute / text
        self.attr = attr
        self.value = value
        self.tracker = tracker

    @property
    def text(self) -> str:
        if self.kind == "element":
            self.tracker.read_text(self.element)
            return " ".join("".join(self.element.itertext()).split())
        return self.value or ""

    def is_empty(self) -> bool:
        if self.kind != "element":
            return not (self.value or "").strip()
        element = self.element
        return not (element.attrib or len(element) or (element.text or "").strip())

    @property
    def location(self) -> str:
        base = element_path(self.element)
        if self.kind == "attribute":
            return f"{base}/@{_attr_local(self.attr or '')}"
        if self.kind == "text":
            return f"{base}/text()"
        return base

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<XmlNode {self.location}>"


def _wrap(result: Any, tracker: XmlReadTracker) -> Any:
    if isinstance(result, etree._Element):
        if not isinstance(result.tag, str):
            return None  # comments and processing instructions are not values
        return XmlNode("element", result, tracker)
    if isinstance(result, str) and hasattr(result, "getparent"):
        parent = result.getparent()
        if parent is None:
            return str(result)
        if result.is_attribute:
            tracker.read_attr(parent, result.attrname)
            return XmlNode("attribute", parent, tracker, attr=result.attrname, value=str(result))
        tracker.read_text(parent)
        return XmlNode("text", parent, tracker, value=str(result))
    return result  # a number, a boolean or a plain string from an XPath expression


def _mark_predicates(
    path: XmlPath, node: Any, scope: etree._Element, tracker: XmlReadTracker
) -> None:
    """``id[@root='x']/@extension`` read ``root`` too: mark the predicate's attributes on the
    elements between the result and the context element."""
    if not path.predicate_attrs or not isinstance(node, XmlNode):
        return
    element: etree._Element | None = node.element
    while element is not None:
        for name in element.attrib:
            if _attr_local(name) in path.predicate_attrs:
                tracker.read_attr(element, name)
        if element is scope:
            break
        element = element.getparent()


def evaluate(path: XmlPath, scope: etree._Element, tracker: XmlReadTracker) -> list[Any]:
    try:
        result = path.xpath(scope)
    except etree.XPathError as exc:  # e.g. an unknown function inside a predicate
        raise MappingError(
            f"the mapping's XPath {path.text!r} cannot be evaluated: {exc}",
            location=element_path(scope),
        ) from None
    items = result if isinstance(result, list) else [result]
    out = []
    for item in items:
        wrapped = _wrap(item, tracker)
        if wrapped is None:
            continue
        _mark_predicates(path, wrapped, scope, tracker)
        out.append(wrapped)
    return out


class XmlSource:
    """The engine's view of one XML document (``SourceAdapter``)."""

    # no ``resolve_text`` (adapter.mapping.evaluation.SourceAdapter): said as a class
    # attribute, so the engine's ``getattr`` finds None without raising AttributeError
    resolve_text = None

    def __init__(self, tracker: XmlReadTracker) -> None:
        self.tracker = tracker
        self.paths: dict[etree._Element, str] = {}  # locations already written

    def resolve(self, path: XmlPath, scope: etree._Element) -> Any:
        items = evaluate(path, scope, self.tracker)
        return items[0] if items else None

    def peek(self, path: XmlPath, scope: etree._Element) -> str:
        items = evaluate(path, scope, XmlReadTracker())
        return value_text(items[0]) if items else ""

    def read_unless_other(self, path: XmlPath, scope: etree._Element, chosen: str) -> None:
        """``peek`` then, when the text is empty or ``chosen``, ``resolve`` (``first``'s
        alternatives, adapter.mapping.closures) with one XPath evaluation: its reads are
        recorded aside and kept only then (the tracker's sets only grow, and ``touched``
        holds every ancestor of what it holds, so a union is what ``resolve`` would add)."""
        scratch = XmlReadTracker()
        items = evaluate(path, scope, scratch)
        if items:
            item = items[0]
            if type(item) is XmlNode and item.kind == "element":  # its text, not recorded
                other = " ".join("".join(item.element.itertext()).split())
            else:
                other = value_text(item)
            other = other.strip()
            if other and other != chosen:
                return
        tracker = self.tracker
        tracker.texts |= scratch.texts
        tracker.attrs |= scratch.attrs
        tracker.touched |= scratch.touched

    def read_alternatives(self, paths: Any, scope: etree._Element, chosen: str) -> None:
        """``read_unless_other`` of each of ``paths`` in turn (``first``'s alternatives not
        taken, one call from the generated ``first``, decision 0144)."""
        for path in paths:
            self.read_unless_other(path, scope, chosen)

    def iterate_path(self, path: XmlPath, scope: etree._Element) -> list[tuple[Any, Any]]:
        """Every match; an element becomes the scope of its item (relative paths start there)."""
        return [(item, self.scope_for(item, scope)) for item in evaluate(path, scope, self.tracker)]

    def iterate_name(self, name: str, scope: etree._Element) -> list[Any]:
        return []  # XML has no groups: the loader asks for a path (each: =...)

    def scope_for(self, item: Any, scope: etree._Element) -> etree._Element:
        if isinstance(item, XmlNode) and item.kind == "element":
            return item.element
        return scope

    def describe(self, scope: etree._Element) -> str | None:
        return element_path(scope, self.paths) if isinstance(scope, etree._Element) else None


# -- matching a message mapping -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XmlMatch:
    """``match:`` of an XML message mapping: the root element and/or a boolean XPath."""

    root_namespace: str | None  # None: any namespace
    root_name: str | None
    condition: XmlPath | None

    def matches(self, root: etree._Element) -> bool:
        qname = etree.QName(root)
        if self.root_name is not None and qname.localname != self.root_name:
            return False
        if self.root_namespace is not None and (qname.namespace or "") != self.root_namespace:
            return False
        if self.condition is None:
            return True
        try:
            return bool(self.condition.xpath(root))  # a node-set: true when not empty
        except etree.XPathError as exc:
            raise MappingError(
                f"match: xpath {self.condition.text!r} cannot be evaluated: {exc}",
                location=element_path(root),
            ) from None

    def describe(self) -> str:
        parts = []
        if self.root_name:
            parts.append(f"root {self.root_name}")
        if self.condition is not None:
            parts.append(f"xpath {self.condition.text}")
        return ", ".join(parts)


def compile_match(root: str | None, condition: str | None, namespaces: dict[str, str]) -> XmlMatch:
    namespace: str | None = None
    name: str | None = None
    if root is not None:
        root = root.strip()
        if root.startswith("{"):
            namespace, _, name = root[1:].partition("}")
        elif ":" in root:
            prefix, _, name = root.partition(":")
            if prefix not in namespaces:
                raise ValueError(f"root {root!r}: namespace prefix {prefix!r} is not declared")
            namespace = namespaces[prefix]
        else:
            name = root
        if not name:
            raise ValueError(f"root {root!r} names no element")
    compiled = compile_path(condition, namespaces) if condition is not None else None
    return XmlMatch(namespace, name, compiled)


# -- the silent-drop report ---------------------------------------------------------------------


@dataclass(slots=True)
class _Ignored:
    elements: set[etree._Element] = field(default_factory=set)
    attrs: set[tuple[etree._Element, str]] = field(default_factory=set)
    texts: set[etree._Element] = field(default_factory=set)


def _ignored(root: etree._Element, ignore: list[XmlPath]) -> _Ignored:
    out = _Ignored()
    for path in ignore:
        result = path.xpath(root)
        for item in result if isinstance(result, list) else []:
            if isinstance(item, etree._Element):
                out.elements.add(item)
            elif isinstance(item, str) and getattr(item, "getparent", None) is not None:
                parent = item.getparent()
                if parent is None:
                    continue
                if item.is_attribute:
                    out.attrs.add((parent, item.attrname))
                else:
                    out.texts.add(parent)
    return out


def _own_text(element: etree._Element) -> str:
    """Text directly inside ``element`` (mixed content included), not inside its children."""
    parts = [element.text or ""]
    parts.extend(child.tail or "" for child in element)
    return "".join(parts).strip()


def _children(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


@dataclass(frozen=True, slots=True)
class XmlClinical:
    """What unread XML content carries clinical text or a value (a warning when unread):
    elements and attributes with one of ``names`` as local name (``value``: a CDA entry's
    ``<value value="6.5" unit="g/L"/>``, all its attributes included), and non-empty text
    when ``text`` (section text, a vendor element's text)."""

    names: frozenset[str]
    text: bool

    def attribute(self, element: etree._Element, name: str) -> bool:
        return _attr_local(name) in self.names or _local(element) in self.names

    def own_text(self, element: etree._Element) -> bool:
        return self.text or _local(element) in self.names


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def unread(
    root: etree._Element,
    tracker: XmlReadTracker,
    ignore: list[XmlPath],
    clinical: XmlClinical | None = None,
) -> list[tuple[str, str, bool]]:
    """(location, what, clinical) for every value no rule read, unless ignored: ``element``
    for an element nothing inside which was read, ``attribute`` and ``text`` otherwise;
    ``clinical`` when the content is what ``clinical`` names (an element: anything inside)."""
    rule = clinical or XmlClinical(frozenset(), False)
    ignored = _ignored(root, ignore)
    paths: dict[etree._Element, str] = {}
    out: list[tuple[str, str, bool]] = []

    def carries(element: etree._Element, count_text: bool, only_clinical: bool = False) -> bool:
        if element in ignored.elements:
            return False
        if any(
            value.strip()
            and (element, name) not in ignored.attrs
            and (not only_clinical or rule.attribute(element, name))
            for name, value in element.attrib.items()
        ):
            return True
        if (
            count_text
            and element not in ignored.texts
            and _own_text(element)
            and (not only_clinical or rule.own_text(element))
        ):
            return True
        return any(carries(child, count_text, only_clinical) for child in _children(element))

    def walk(element: etree._Element, text_read: bool) -> None:
        if element in ignored.elements:
            return
        text_read = text_read or element in tracker.texts
        if element not in tracker.touched and not text_read:
            if carries(element, True):
                out.append((element_path(element, paths), "element", carries(element, True, True)))
            return
        if element not in tracker.touched and not carries(element, False):
            return  # its text was read with an enclosing element and it has no attributes
        for name, value in element.attrib.items():
            if (
                value.strip()
                and (element, name) not in tracker.attrs
                and (element, name) not in ignored.attrs
            ):
                out.append(
                    (
                        f"{element_path(element, paths)}/@{_attr_local(name)}",
                        "attribute",
                        rule.attribute(element, name),
                    )
                )
        if not text_read and element not in ignored.texts and _own_text(element):
            out.append((f"{element_path(element, paths)}/text()", "text", rule.own_text(element)))
        for child in _children(element):
            walk(child, text_read)

    walk(root, False)
    return out

"""The FHIR XML rules that matter to a receiver (FHIR R4 xml.html), checked against the
official R4 JSON schema (tests/data/fhir-r4-schema), independently of the serialiser:

* the root is the resource type in the FHIR namespace; every element is in it (the
  narrative ``div`` in the XHTML namespace);
* a primitive is an element with a ``value`` attribute and no text, only ``extension``
  children; ``Element.id`` and ``Extension.url`` are attributes;
* elements come in the order the type defines them (the schema lists properties in
  definition order);
* a nested resource (``contained``, ``Bundle.entry.resource``) is wrapped in its element.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

FHIR = "http://hl7.org/fhir"
XHTML = "http://www.w3.org/1999/xhtml"
SCHEMA = Path(__file__).parent / "data" / "fhir-r4-schema" / "fhir.schema.json"


@cache
def _definitions() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))["definitions"]


def _is_primitive(name: str) -> bool:
    if not name:  # a code with its value set inline (enum) or a pattern: a primitive
        return True
    definition = _definitions()[name]
    return "properties" not in definition and name not in ("xhtml", "ResourceList")


def _ref(prop: dict[str, Any]) -> str:
    ref = prop.get("$ref") or prop.get("items", {}).get("$ref", "")
    return ref.rsplit("/", 1)[-1]


def xml_problems(document: bytes) -> list[str]:
    """Every broken rule, with the path of the element; [] when the document is right."""
    root = etree.fromstring(document)
    problems: list[str] = []
    qname = etree.QName(root)
    if qname.namespace != FHIR:
        problems.append(f"root {root.tag}: not in the FHIR namespace")
    if qname.localname not in _definitions():
        problems.append(f"root {qname.localname}: not a FHIR resource type")
    else:
        _check(root, qname.localname, qname.localname, problems)
    return problems


def _check(element: Any, type_name: str, path: str, problems: list[str]) -> None:
    properties = _definitions()[type_name].get("properties", {})
    order = [name for name in properties if not name.startswith("_")]
    last = -1
    for child in element:
        if not isinstance(child.tag, str):  # comments
            continue
        qname = etree.QName(child)
        name, where = qname.localname, f"{path}.{qname.localname}"
        if name == "div" and type_name == "Narrative":
            if qname.namespace != XHTML:
                problems.append(f"{where}: the narrative div is not in the XHTML namespace")
            continue
        if qname.namespace != FHIR:
            problems.append(f"{where}: not in the FHIR namespace")
            continue
        if name not in properties:
            problems.append(f"{where}: {type_name} has no element {name}")
            continue
        element_id = name == "id" and type_name not in _resource_types()
        if element_id or (name == "url" and type_name == "Extension"):
            problems.append(f"{where}: must be an attribute, not an element")
            continue
        position = order.index(name)
        if position < last:
            problems.append(f"{where}: out of order in {type_name}")
        last = position
        child_type = _ref(properties[name])
        if child_type == "ResourceList":
            inner = [c for c in child if isinstance(c.tag, str)]
            if len(inner) != 1 or etree.QName(inner[0]).localname not in _resource_types():
                problems.append(f"{where}: must hold exactly one resource element")
            else:
                _check(inner[0], etree.QName(inner[0]).localname, where, problems)
        elif _is_primitive(child_type):
            _check_primitive(child, where, problems)
        else:
            _check(child, child_type, where, problems)


def _check_primitive(element: Any, where: str, problems: list[str]) -> None:
    if (element.text or "").strip():
        problems.append(f"{where}: a primitive carries its value as text, not in @value")
    kids = [c for c in element if isinstance(c.tag, str)]
    if "value" not in element.attrib and not kids:
        problems.append(f"{where}: a primitive without a value attribute or extensions")
    for kid in kids:
        if etree.QName(kid).localname != "extension":
            problems.append(f"{where}: a primitive may only hold extensions")
        else:
            _check(kid, "Extension", f"{where}.extension", problems)


@cache
def _resource_types() -> frozenset[str]:
    one_of = _definitions()["ResourceList"]["oneOf"]
    return frozenset(_ref(item) for item in one_of)
